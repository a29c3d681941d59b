"""`mer prepare SWEEP.yaml`: build (or reuse) the data cache of every distinct data config."""

from __future__ import annotations

import argparse

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        parents=[common.parent()],
        help="decode clips, select frames and crop regions once for every data config of a sweep",
        description="Prepare (or reuse) the cached arrays of every distinct data config among "
        "the sweep's variants; prints each cache path, clip count and speed.",
    )
    p.add_argument(
        "--workers", type=int, default=0,
        help="decoding processes (default 0: one per CPU, at most 8)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the config schema and the decoders are slow imports; `mer --help` stays fast
    from mer.config import load_config
    from mer.data.cache import prepare_sweep

    cfg = load_config(args.config, args.set)
    for data, built, seconds in prepare_sweep(cfg, progress=not args.quiet, workers=args.workers):
        n = len(data.samples)
        speed = f"{n / max(seconds, 1e-9):.1f} clips/s" if built else "reused, nothing decoded"
        oracle = "  [oracle regions]" if data.oracle_input else ""
        print(f"{data.path}  {n} clips  {speed}{oracle}")
    return 0
