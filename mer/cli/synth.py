"""`mer synth OUT --layout L ...`: write a synthetic dataset and say what was written."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mer.cli import common
from mer.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `synth` on the `mer` command line. The layouts are the registry's (checked when
    the command runs: listing them here would import every dataset module for `mer --help`)."""
    p = subparsers.add_parser(
        "synth",
        parents=[common.parent(config=False)],
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
    p.add_argument(
        "--layout",
        default="casme2",
        help="the dataset whose layout to write (casme2, samm, smic, casme3, deception, videos, "
        "or a composite such as megc2019; every registered dataset with a synthetic layout)",
    )
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
        help="clips per subject outside the layout's classes, for layouts whose dataset codes "
        "such clips (default 1 when clips >= 4)",
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
    p.set_defaults(func=run)
    return p


def layout_choices() -> list[str]:
    """The layouts the generator writes, then the composites it writes from their parts."""
    # lazy: the registry (difflib, inspect, dataclasses) would triple `mer --help`'s import time;
    # it imports the dataset modules (pandas, PIL) when asked
    from mer.datasets import registry

    composites = [s.name for s in registry.specs() if s.write_synthetic is not None]
    return [*registry.with_synthetic_layout(), *composites]


def run(args: argparse.Namespace) -> int:
    # lazy: the config schema imports pandas, the writers numpy and PIL; `mer --help` stays fast
    from mer.config import SyntheticConfig
    from mer.datasets import registry
    from mer.datasets.synthetic import write_dataset

    start = time.perf_counter()
    choices = layout_choices()
    if args.layout not in choices:
        raise ConfigError(
            f"--layout {args.layout!r}: "
            + registry.did_you_mean(args.layout, choices)
            + f"expected one of {', '.join(choices)}"
        )
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


def summary(ds: Any, size: int, framing: str = "scene") -> str:
    """Counts and paths of one written dataset (a SyntheticDataset), a few lines."""
    # lazy: numpy and the synthetic package are slow imports; `mer --help` stays fast
    import numpy as np

    from mer.datasets import registry
    from mer.datasets.synthetic import CLASSES, frame_width, landmark_path

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
