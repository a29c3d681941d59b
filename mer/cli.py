"""`mer` command line: synth | prepare | cache | train | summary | report.

Each subcommand lives beside the code it drives and registers itself through `add_parser`; this
module only assembles them, sets up logging and turns user errors (MerError) into a one-line
message and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mer import __version__
from mer.errors import MerError

# (module, what it adds) in the order `mer --help` lists them.
SUBCOMMAND_MODULES = (
    "mer.data.synthetic_cli",  # synth
    "mer.data.cache_cli",  # prepare, cache
    "mer.train_cli",  # train
    "mer.models.summary",  # summary
    "mer.report",  # report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mer",
        description="Micro-expression recognition experiments: synthetic data, preprocessing, "
        "single-fold training and reports. Sweeps run with `python run_sweep.py SWEEP.yaml`.",
    )
    parser.add_argument("--version", action="version", version=f"mer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except MerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a folder where a file was expected, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
