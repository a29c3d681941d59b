"""`mer synth OUT --layout L ...`: write a synthetic dataset and say what was written."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mer.cli import common

# mer.data.synthetic.LAYOUTS plus the composite; spelled out because importing the synthetic
# package (numpy, image libraries) would slow `mer --help` (tests/test_cli.py keeps them equal)
LAYOUT_CHOICES = ("casme2", "samm", "smic", "casme3", "deception", "videos", "megc2019")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `synth` on the `mer` command line."""
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
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="casme2")
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
        help="clips per subject outside the three classes (casme2, samm, casme3; "
        "default 1 when clips >= 4)",
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


def run(args: argparse.Namespace) -> int:
    # lazy: the synthetic writers import numpy and image libraries; `mer --help` stays fast
    from mer.data.synthetic import write_dataset, write_megc2019

    start = time.perf_counter()
    common_args = dict(
        subjects=args.subjects,
        clips=args.clips,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        intensity=args.intensity,
        others=args.others,
        framing=args.framing,
    )
    if args.layout == "megc2019":
        megc = write_megc2019(args.out, **common_args)
        for ds in megc.parts.values():
            print(summary(ds, args.size, args.framing))
        n_rows = len(megc.gt.read_text().splitlines())
        print(f"composite ground truth: {megc.gt} ({n_rows} rows)")
    else:
        ds = write_dataset(args.out, args.layout, mapping=not args.no_mapping, **common_args)
        print(summary(ds, args.size, args.framing))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def summary(ds: Any, size: int, framing: str = "scene") -> str:
    """Counts and paths of one written dataset (a SyntheticDataset), a few lines."""
    # lazy: numpy and the synthetic package are slow imports; `mer --help` stays fast
    import numpy as np

    from mer.data.synthetic import frame_width, landmark_path

    media = list(dict.fromkeys(c.media for c in ds.clips))
    n_frames = sum(int(np.load(landmark_path(m), mmap_mode="r").shape[0]) for m in media)
    labels = Counter(
        c.label3 or (c.emotion if ds.layout == "deception" else "other") for c in ds.clips
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
    kind = "videos" if ds.layout in ("deception", "videos") else "frame folders"
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
