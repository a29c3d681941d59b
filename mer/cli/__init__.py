"""`mer` command line: synth | prepare | cache | train | summary | report | sweep | wandb-view.

All argument parsing of the project lives in this package, one module per subcommand; each
parses, calls the layer that does the work (mer.data, mer.experiment, mer.models, mer.report,
mer.sweep) and prints. `common` holds what they share: the parent parser (sweep YAML, `--set`,
`-v`), logging and the error policy. `python run_sweep.py ...` is `mer sweep ...`.

Commands import their implementation when they run, never at parser construction: `mer --help`
must not wait for torch or Ray.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mer import __version__
from mer.cli import cache, common, prepare, report, summary, sweep, synth, train, wandb_view

# in the order `mer --help` lists them
COMMANDS = (synth, prepare, cache, train, summary, report, sweep, wandb_view)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mer",
        description="Micro-expression recognition experiments: synthetic data, preprocessing, "
        "single-fold training, reports and sweeps (`mer sweep SWEEP.yaml`, the same as "
        "`python run_sweep.py SWEEP.yaml`).",
    )
    parser.add_argument("--version", action="version", version=f"mer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return common.run(args, argv)


__all__ = ["build_parser", "main"]
