"""`mer synth OUT --layout L ...`: write a synthetic dataset and say what was written."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mer.config import SyntheticConfig
from mer.datasets import registry
from mer.datasets.synthetic import (
    CLASSES,
    SyntheticDataset,
    frame_width,
    landmark_path,
    write_dataset,
)


def _has_others(layout: str) -> bool:
    return registry.synthetic_layout(layout).has_others


def layout_choices() -> list[str]:
    """The layouts the generator writes, then the composites it writes from their parts."""
    composites = [s.name for s in registry.specs() if s.write_synthetic is not None]
    return [*registry.with_synthetic_layout(), *composites]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `synth` on the `mer` command line."""
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic dataset in a real dataset's layout",
        description="Write face-like synthetic micro-expression clips in the on-disk layout of a "
        "real dataset (frames or videos, annotation workbook, ground-truth landmarks). Same "
        "seed, same bytes.",
    )
    p.add_argument(
        "out",
        type=Path,
        help="folder to create (replaced if it holds a synthetic "
        "dataset, refused if it holds anything else)",
    )
    p.add_argument("--layout", choices=layout_choices(), default="casme2")
    p.add_argument("--subjects", type=int, default=3, help="subjects (per dataset for megc2019)")
    p.add_argument("--clips", type=int, default=4, help="clips per subject")
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--size", type=int, default=128, help="frame height in pixels (width is 4:3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--intensity",
        type=float,
        default=1.0,
        help="scale of the AU motion (1.0: 1-3 px at 128 px)",
    )
    p.add_argument(
        "--others",
        type=int,
        default=None,
        help="clips per subject outside the three classes (layouts "
        + ", ".join(n for n in registry.with_synthetic_layout() if _has_others(n))
        + "; default 1 when clips >= 4)",
    )
    p.add_argument(
        "--framing",
        choices=("scene", "face"),
        default="scene",
        help="scene: the head in its surroundings, 4:3 frames (CASME II RAW); face: square "
        "frames filled by the face (CASME II Cropped)",
    )
    p.add_argument(
        "--no-mapping", action="store_true", help="deception: leave out the clip-to-subject CSV"
    )
    p.set_defaults(func=synth_command)
    return p


add_synth_parser = add_parser


def synth_command(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    spec = registry.get(args.layout)
    # checked as `data.synthetic` of a sweep is (the options are its fields), for each layout
    options = {
        name: getattr(args, name) for name in SyntheticConfig.model_fields if name != "layout"
    }
    configs = [SyntheticConfig(layout=name, **options) for name in (spec.parts or (spec.name,))]
    kw = configs[0].generator_args()
    if spec.write_synthetic is not None:
        composite = spec.write_synthetic(args.out, **kw)
        for ds in composite.parts.values():
            print(summary(ds, args.size, args.framing))
        n_rows = len(composite.gt.read_text().splitlines())
        print(f"composite ground truth: {composite.gt} ({n_rows} rows)")
    else:
        ds = write_dataset(args.out, args.layout, mapping=not args.no_mapping, **kw)
        print(summary(ds, args.size, args.framing))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def summary(ds: SyntheticDataset, size: int, framing: str = "scene") -> str:
    """Counts and paths of one written dataset, a few lines."""
    media = list(dict.fromkeys(c.media for c in ds.clips))
    n_frames = sum(int(np.load(landmark_path(m), mmap_mode="r").shape[0]) for m in media)
    layout = registry.synthetic_layout(ds.layout)
    three = set(layout.classes) <= set(CLASSES)  # else: count its own classes (the emotion)
    labels = Counter(c.label3 or ("other" if three else c.emotion) for c in ds.clips)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
    kind = "videos" if layout.video else "frame folders"
    width = frame_width(size, framing)
    return "\n".join(
        [
            f"wrote {ds.layout}: {len(ds.subjects)} subjects, {len(ds.clips)} clips ({counts}), "
            f"{len(media)} {kind}, {n_frames} frames of {size}x{width} (h x w)",
            f"  root:        {ds.root}",
            f"  annotations: {ds.annotations or '(none: classes from folders)'}",
            "  landmarks:   <media>.landmarks.npy beside every frame folder / video",
        ]
    )
