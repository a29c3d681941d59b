"""Run time of mer.experiment.uncertainty on a composite-sized study (`python -m bench.bootstrap`).

Synthetic predictions shaped like the MEGC2019 composite (442 clips of 68 subjects: SMIC 16
subjects / 164 clips, CASME II 24 / 145, SAMM 28 / 133; classes 250/109/83), `--variants`
variants of varying accuracy, 1 and 3 seeds. Timed: subject-bootstrap intervals of every variant,
then every other variant against the first (paired bootstrap + Monte-Carlo permutation test,
Holm). Prints a markdown table: medians of `--repeats` runs, wall-clock and CPU seconds (CPU
sums every thread: on a shared machine it is the steadier figure), one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from mer.experiment.environment import cpu_name
from mer.experiment.uncertainty import (
    ClipPredictions,
    bootstrap_intervals,
    clear_resample_cache,
    compare_to_reference,
)

PARTS = {"smic": (16, 164), "casme2": (24, 145), "samm": (28, 133)}  # subjects, clips
CLASS_COUNTS = (250, 109, 83)


def composite_like(n_variants: int, n_seeds: int, seed: int = 0) -> dict[str, ClipPredictions]:
    """`n_variants` variants on the same 442 clips; variant v is right on ~55-75 % of clips."""
    rng = np.random.default_rng(seed)
    subjects = []
    for ds, (n_subj, n_clips) in PARTS.items():
        sizes = 1 + rng.multinomial(n_clips - n_subj, np.full(n_subj, 1 / n_subj))
        subjects += [f"{ds}/s{i:02d}" for i in range(n_subj) for _ in range(sizes[i])]
    subj = np.array(subjects)
    true = rng.permutation(np.repeat(np.arange(3), CLASS_COUNTS))
    ids = np.array([f"clip{i:03d}" for i in range(subj.size)])
    hard = rng.random(subj.size)  # clip difficulty shared by every variant and seed
    out = {}
    for v in range(n_variants):
        skill = 0.55 + 0.2 * v / max(n_variants - 1, 1)
        right = hard[None, :] < skill + 0.1 * rng.standard_normal((n_seeds, subj.size))
        wrong = (true + rng.integers(1, 3, size=(n_seeds, subj.size))) % 3
        pred = np.where(right, true, wrong)
        out[f"v{v:02d}"] = ClipPredictions.build(
            true, pred, subj, 3, clip_ids=ids, name=f"v{v:02d}"
        )
    return out


def run(n_variants: int, n_seeds: int, n_boot: int, n_perm: int) -> tuple[float, float, float]:
    """Wall seconds for the intervals of every variant and for the comparisons with the first,
    and the CPU seconds of both (all threads; what a loaded machine does not inflate)."""
    variants = composite_like(n_variants, n_seeds)
    clear_resample_cache()  # each repeat draws its resamples afresh, as a new report would
    c0, t0 = time.process_time(), time.perf_counter()
    for v in variants.values():
        bootstrap_intervals(v, n_boot=n_boot, seed=0)
    t1 = time.perf_counter()
    compare_to_reference(variants, "v00", n_boot=n_boot, n_perm=n_perm, seed=0)
    return t1 - t0, time.perf_counter() - t1, time.process_time() - c0


def main(argv: Sequence[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--n-perm", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    clips = sum(c for _, c in PARTS.values())
    subjects = sum(s for s, _ in PARTS.values())
    lines = [
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}, numpy {np.__version__}",
        "",
        "| seeds | clips | subjects | variants | resamples | swaps | intervals s | "
        "comparisons s | total s | total CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_seeds in args.seeds:
        times = [run(args.variants, n_seeds, args.n_boot, args.n_perm) for _ in range(args.repeats)]
        iv = statistics.median(t[0] for t in times)
        cmp = statistics.median(t[1] for t in times)
        tot = statistics.median(t[0] + t[1] for t in times)
        cpu = statistics.median(t[2] for t in times)
        lines.append(
            f"| {n_seeds} | {clips} | {subjects} | {args.variants} | {args.n_boot} | "
            f"{args.n_perm} | {iv:.3f} | {cmp:.3f} | {tot:.3f} | {cpu:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
