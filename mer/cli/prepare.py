"""`mer prepare SWEEP.yaml [--verify] [--dry-run]`: build (or reuse) the data cache of every
distinct data config (the work is in mer.data.cache and mer.data.preflight)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        parents=[common.parent()],
        help="decode clips, select frames and crop regions once for every data config of a sweep",
        description="Prepare (or reuse) the cached arrays of every distinct data config among "
        "the sweep's variants; prints each cache path, clip count and speed. An interrupted "
        "prepare continues where it stopped; clips that fail are reported together at the end.",
    )
    p.add_argument(
        "--workers", type=int, default=0,
        help="decoding processes (default 0: one per CPU, at most 8)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--verify", action="store_true",
        help="check every byte of existing caches against their manifests' digests (without "
        "it: shapes, sizes and a sample of 3 clips per array)",
    )  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true",
        help="decode nothing: check the media without decoding and estimate the sizes",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the config schema and the decoders are slow imports; `mer --help` stays fast
    from mer.config import load_config

    cfg = load_config(args.config, args.set)
    if args.dry_run:
        # lazy: as above
        from mer.data.preflight import dry_run_lines

        print("\n".join(dry_run_lines(cfg)))
        return 0
    # lazy: as above
    from mer.data.cache import prepare_sweep

    used_by = f"mer prepare {Path(args.config).resolve()}"
    for data, built, seconds in prepare_sweep(
        cfg, progress=not args.quiet, workers=args.workers, verify=args.verify, used_by=used_by
    ):
        n = len(data.samples)
        speed = f"{n / max(seconds, 1e-9):.1f} clips/s" if built else "reused, nothing decoded"
        oracle = "  [oracle regions]" if data.oracle_input else ""
        checked = "  verified" if args.verify and not built else ""
        print(f"{data.path}  {n} clips  {speed}{oracle}{checked}")
    return 0
