"""What every `mer` command shares: the config arguments, verbosity, logging, one error policy.

Why one place: the command line is where a user's mistakes arrive, and every command must answer
them alike: `error: ...` on stderr and exit status 2 for a bad config, option or path (MerError,
OSError), 130 for Ctrl-C and 143 for SIGTERM, which takes the same path (mer.util.signals; with
the `--resume` hint where the command can resume), never a traceback. And every command that
reads a sweep YAML takes it, its `--set` overrides and `-v` the same way, from one parent parser.

Nothing here imports more than the standard library, `mer.errors` and `mer.util.signals`:
`mer --help` builds every
subcommand's parser, and must stay fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from mer.errors import MerError
from mer.util import signals

INTERRUPTED = "interrupted"


def parent(
    *, config: bool = True, verbose_default: Any = argparse.SUPPRESS
) -> argparse.ArgumentParser:
    """The parent parser of every command: the sweep YAML and `--set` (when the command reads a
    config), and `-v/--verbose`.

    `-v` defaults to SUPPRESS under `mer`, whose own `-v` (`mer -v COMMAND`) must not be reset by
    the subcommand's default; a standalone parser (run_sweep.py) passes False.
    """
    p = argparse.ArgumentParser(add_help=False)
    if config:
        p.add_argument("config", help="sweep YAML (see sweeps/)")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set train.epochs=5 (repeatable)",
        )
    p.add_argument(
        "-v", "--verbose", action="store_true", default=verbose_default, help="debug logging"
    )
    return p


# Libraries whose INFO lines need no action from a user (matplotlib announces rebuilding its font
# cache on a fresh machine): shown with -v only.
QUIET_LIBRARIES = ("matplotlib",)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Set up logging and run the parsed command (`args.func`), turning the errors a user can
    cause into one line on stderr and an exit status.

    `argv` (default sys.argv) is kept as `args.argv`: a sweep records its command line."""
    args.argv = list(sys.argv if argv is None else argv)
    setup_logging(bool(getattr(args, "verbose", False)))
    signals.sigterm_as_interrupt()  # SIGTERM (batch schedulers, kill) stops a run as Ctrl-C does
    try:
        status = int(args.func(args) or 0)
    except MerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a folder given as the config, ...: str names it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(getattr(args, "interrupted", INTERRUPTED), file=sys.stderr)
        return signals.EXIT_TERMINATED if signals.terminated() else 130
    if status and signals.terminated():  # stopped by SIGTERM: what it saved is resumable
        print(f"terminated (SIGTERM): {getattr(args, 'interrupted', INTERRUPTED)}", file=sys.stderr)
        return signals.EXIT_TERMINATED
    return status
