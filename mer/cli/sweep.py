"""`mer sweep SWEEP.yaml [options]` (= `python run_sweep.py SWEEP.yaml [options]`): plan, run,
resume or debug a sweep.

    mer sweep sweeps/demo.yaml                      # every trial on a local Ray
    mer sweep sweeps/casme2_ablation.yaml --dry-run # the plan; reads annotations only
    mer sweep sweeps/X.yaml --resume                # continue an interrupted sweep
    mer sweep sweeps/X.yaml --address auto          # on a running Ray cluster
    mer sweep sweeps/X.yaml --trial full/sub01/0    # one trial in this process, no Ray

Mode: a config with a `search` section runs the Optuna search (`mer.sweep.search`; then, with
`search.holdout_subjects`, the hold-out evaluation it generates as OUT/search/holdout.yaml, itself
an ablation sweep), otherwise the ablation grid (`mer.sweep.ablation`: every variant × fold ×
seed). Errors a user can cause print one line, exit 2; Ctrl-C exits 130 (continue with --resume).

run_sweep.py, the fixed entry point of job scripts and cluster.yaml, calls `main` here: the same
options, output and exit codes as `mer sweep`.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from mer.cli import common

log = logging.getLogger(__name__)

DESCRIPTION = "Run a mer sweep (ablation grid or Optuna search) with Ray Tune."
INTERRUPTED = "interrupted; continue with --resume"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep's own options (after the parent's config, --set and -v)."""
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (variants, folds, trials, resources, GPU-hours); reads "
        "annotations only, starts no Ray",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in the output folder; finished trials are not rerun (starts "
        "the sweep when the folder holds none, so a job script can always pass it)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the output folder's previous sweep results first",
    )
    p.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="Ray cluster to join (default: start a local Ray)",
    )
    p.add_argument(
        "--max-concurrent",
        type=_positive_int,
        metavar="N",
        help="trials at a time (default: resources.max_concurrent, else what fits)",
    )
    p.add_argument(
        "--num-cpus",
        type=_positive_int,
        metavar="N",
        help="CPUs of the local Ray (default: all); ignored with --address",
    )
    p.add_argument(
        "--wandb",
        choices=("offline", "online", "disabled"),
        help="W&B mode (default: tracking.wandb.mode of the config, offline)",
    )
    p.add_argument("--out", metavar="DIR", help="results folder (default: {output}/{name})")
    p.add_argument(
        "--storage",
        metavar="PATH",
        help="Tune storage for checkpoints and experiment state (default: OUT/ray; "
        "a path every node sees on a multi-node cluster)",
    )
    p.add_argument(
        "--trial",
        metavar="VARIANT/FOLD[/SEED]",
        help="run one trial in this process without Ray (debugging; results under OUT/debug/)",
    )
    p.set_defaults(func=run, interrupted=INTERRUPTED)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        parents=[common.parent()],
        help="run a sweep (ablation grid or Optuna search) with Ray Tune; = run_sweep.py",
        description=DESCRIPTION,
    )
    add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    """run_sweep.py's parser: `mer sweep`'s, under the script's name."""
    p = argparse.ArgumentParser(
        prog="run_sweep.py",
        description=DESCRIPTION,
        parents=[common.parent(verbose_default=False)],
    )
    add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """run_sweep.py: `mer sweep` with the script's own argv."""
    args = build_parser().parse_args(argv)
    return common.run(args, argv)


def run(args: argparse.Namespace) -> int:
    if not args.dry_run:  # at once: the imports, data and Ray below take seconds to a minute
        log.info("%s: reading the sweep%s", args.config, "" if args.trial else ", then data, Ray")
    # lazy: the config schema, pandas and the data code are slow imports; `mer --help` stays
    # fast. None of these imports Ray or torch: a dry run and --trial start without Ray.
    from mer.sweep.console import quiet_ray
    from mer.sweep.options import RunOptions
    from mer.sweep.outdir import output_dir, storage_key
    from mer.sweep.space import load_search_config

    t0 = time.monotonic()
    cfg = load_search_config(args.config, args.set)  # a bad space fails here, first
    if args.dry_run:
        from mer.sweep.dryrun import dry_run  # lazy: plans the sweep (data code, pandas)

        print(dry_run(cfg, args.max_concurrent))
        return 0
    out = output_dir(cfg, args.out)
    if args.trial:
        from mer.sweep.debug import run_one_trial  # lazy: the data and training code

        spec, payload, folder = run_one_trial(cfg, args.trial, out, resume=args.resume)
        sc = payload["test_scores"]
        tag = " [oracle]" if payload["oracle"] else ""
        n_test = sum(1 for s in payload["predictions"]["split"] if s == "test")
        print(
            f"{spec.id}{tag}: test uf1 {sc['uf1']:.4f} uar {sc['uar']:.4f} acc {sc['acc']:.4f} "
            f"on {n_test} clip(s); selected epoch {payload['selected_epoch']}; "
            f"{payload['timings']['total']:.1f} s"
        )
        print(f"files: {folder}")
        return 0
    quiet_ray()  # before Ray is imported: its settings and the console's log filters
    opts = RunOptions(
        out=out,
        resume=args.resume,
        overwrite=args.overwrite,
        max_concurrent=args.max_concurrent,
        wandb=args.wandb,
        address=args.address,
        storage=storage_key(args.storage),
        num_cpus=args.num_cpus,
        argv=args.argv,
    )
    if args.resume and cfg.search is None:
        # lazy: pandas and the results code load on use (this path never imports Ray)
        from mer.sweep.finished import finished_sweep, print_outcome

        summary = finished_sweep(cfg, opts)
        if summary is not None:  # nothing left to run: its table, without Ray
            return print_outcome(cfg, out, summary, interrupted=False)
    # the folder is claimed and Ray starts in the background before the slow imports below,
    # so that its seconds of start-up overlap them (mer.sweep.startup)
    from mer.sweep.startup import begin  # lazy: imports the config and data code (see above)

    startup = begin(cfg, opts)
    try:
        if cfg.search is not None:
            from mer.sweep.search import run_search  # lazy: Ray Tune takes seconds to import

            status = run_search(cfg, opts, startup=startup)
        else:
            from mer.sweep.ablation import run_ablation  # lazy: Ray Tune takes seconds to import

            status = run_ablation(cfg, opts, startup=startup)
    finally:
        startup.close()  # a no-op once the sweep's session took them over
    log.info("sweep %s finished in %.1f s (status %d)", cfg.name, time.monotonic() - t0, status)
    return status
