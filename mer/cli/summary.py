"""`mer summary SWEEP.yaml`: parameters, GFLOPs and output shape of every ablation variant."""

from __future__ import annotations

import argparse

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        parents=[common.parent()],
        help="parameters, GFLOPs and output shape of each ablation variant",
        description="Build every ablation variant of a sweep (on the meta device) and print its "
        "parameter count, forward GFLOPs per clip and output shape, and which switches "
        "differ from the first variant.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the config schema and torch (models) are slow imports; `mer --help` stays fast
    from mer.config import load_config
    from mer.models.summary import format_table, input_shape, summary_rows

    cfg = load_config(args.config, args.set)
    print(f"{cfg.name}: input {'×'.join(str(n) for n in input_shape(cfg)[1:])} (C×T×H×W)")
    print(format_table(summary_rows(cfg)))
    return 0
