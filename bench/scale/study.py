"""The study shape of one benchmark size: sweeps/demo.yaml shrunk to a tiny model and one epoch,
`folds` synthetic subjects (LOSO: one fold each), V variants x S seeds.

Variants differ by `model.dropout` only: every variant is a distinct model config (as in a real
ablation, where model statistics are counted per distinct model) while all share one prepared
dataset (one data key), so data preparation is the same at every size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "sweeps" / "demo.yaml"

# bench/throughput's tiny model (spec.TINY_MODEL) on 4 frames of 16 px
TINY = [
    "model.conv_a_channels=4",
    "model.conv_b_channels=4",
    "model.merge_channels=8",
    "model.attention_reduction=4",
    "model.dense=[16, 8]",
    "model.recurrent_units=16",
    "model.head=[16, 8]",
    "data.frames.count=4",
    "data.size=16",
    "data.synthetic.frames=8",
    "data.synthetic.size=32",
    "data.synthetic.clips=3",
    "data.regions.policy=none",
    "train.threads=1",
]


@dataclass(frozen=True)
class Shape:
    folds: int
    variants: int
    seeds: int

    @property
    def trials(self) -> int:
        return self.folds * self.variants * self.seeds

    @property
    def label(self) -> str:
        return f"{self.variants}x{self.seeds}"


def parse_shape(text: str, folds: int) -> Shape:
    """`VxS` (variants x seeds) at `folds` folds."""
    v, _, s = text.lower().partition("x")
    if not (v.isdigit() and s.isdigit() and int(v) >= 1 and int(s) >= 1):
        raise ValueError(f"shape {text!r}: expected VxS, e.g. 5x3")
    return Shape(folds, int(v), int(s))


def overrides(
    shape: Shape, cache: Path, *, epochs: int, checkpoint_every: int, extra: list[str]
) -> list[str]:
    """The --set values of one size."""
    variants = ", ".join(
        f"v{i:02d}: {{model.dropout: {0.30 + i / 1000:.3f}}}" for i in range(shape.variants)
    )
    seeds = ", ".join(str(s) for s in range(shape.seeds))
    return [
        f"data.cache_dir={cache}",
        f"data.synthetic.subjects={shape.folds}",
        *TINY,
        f"train.epochs={epochs}",
        f"train.checkpoint_every={checkpoint_every}",
        f"ablations={{{variants}}}",
        f"seeds=[{seeds}]",
        "resources={gpu_per_trial: 0, cpu_per_trial: 1, max_failures: 1}",
        *extra,
    ]
