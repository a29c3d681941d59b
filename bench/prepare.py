"""`python -m bench.prepare`: how many frames `mer prepare` decodes per clip, and its wall time.

Why: selecting frames by motion (`motion_topk`) needs every frame of a clip; the chosen T frames
must not be decoded a second time (issue 19.7). This prepares a synthetic video dataset (layouts
`videos` and `deception`: H.264 files, decoded by decord or PyAV) in a fresh cache, in this
process (one worker), and counts the frames handed out by the decoder (`ClipSource._decode`, the
one place every decoded frame passes) against the frames the clips have.

Prints one markdown row per (layout, backend): clips, frames in the clips, decoder passes per
clip, frames handed out, handed out per clip frame (1.00: each frame once), prepare wall time and
CPU time of this process (best of `--repeats`; CPU time is the steadier figure on a shared
machine), wall seconds per clip.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path


def _measure(layout: str, backend: str, args: argparse.Namespace, work: Path) -> dict:
    from mer.config import DataConfig, FramesConfig, RegionsConfig, SyntheticConfig
    from mer.data.cache import prepare_data
    from mer.datasets import media

    labels = {"videos": "folder3", "deception": "deception2"}[layout]
    syn = SyntheticConfig(
        layout=layout, subjects=args.subjects, clips=args.clips, frames=args.frames, size=args.size
    )
    decoded = passes = 0
    real = media.ClipSource._decode

    def counting(self, positions):  # noqa: ANN001, ANN202 - the decoder's own signature
        nonlocal decoded, passes
        passes += 1
        for img in real(self, positions):
            decoded += 1
            yield img

    best = cpu = float("inf")
    n = frames_total = 0
    for r in range(args.repeats):
        cfg = DataConfig(
            dataset="synthetic",
            synthetic=syn,
            root=str(work / f"{layout}-data"),
            labels=labels,
            frames=FramesConfig(count=args.count, select="motion_topk"),
            size=64,
            regions=RegionsConfig(policy="fixed", landmarks="none"),
            video_backend=backend,
            cache_dir=str(work / f"cache-{layout}-{backend}-{r}"),
        )
        decoded = passes = 0
        media.ClipSource._decode = counting  # type: ignore[method-assign]
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            data = prepare_data(cfg, progress=False, workers=1)
            best = min(best, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        finally:
            media.ClipSource._decode = real  # type: ignore[method-assign]
        n = len(data.samples)
        frames_total = sum(media.frame_count(p, backend=backend) for p in data.samples["path"])
    return {
        "layout": layout, "backend": backend, "clips": n, "frames": frames_total,
        "decoded": decoded, "passes": passes / max(n, 1),
        "ratio": decoded / max(frames_total, 1), "wall": best, "cpu": cpu,
        "per_clip": best / max(n, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.prepare", description=__doc__)
    p.add_argument("--subjects", type=int, default=3)
    p.add_argument("--clips", type=int, default=4, help="clips per subject")
    p.add_argument("--frames", type=int, default=90, help="frames per synthetic video")
    p.add_argument("--size", type=int, default=240, help="frame height of the synthetic video")
    p.add_argument("--count", type=int, default=16, help="data.frames.count (T)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--layouts", default="videos,deception")
    p.add_argument("--backends", default="decord,av")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        for layout in args.layouts.split(","):
            for backend in args.backends.split(","):
                rows.append(_measure(layout, backend, args, Path(tmp)))
    print(
        "| layout | backend | clips | frames | decoder passes/clip | decoded | decoded/frame "
        "| wall s | CPU s | s/clip |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['layout']} | {r['backend']} | {r['clips']} | {r['frames']} | {r['passes']:.2f} "
            f"| {r['decoded']} "
            f"| {r['ratio']:.2f} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['per_clip']:.3f} |"
        )
    print(
        f"\n{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"{args.subjects}x{args.clips} clips of {args.frames} frames, {args.size} px high, "
        f"T={args.count}, motion_topk, one worker, best of {args.repeats}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
