"""`python run_sweep.py SWEEP.yaml [options]`: plan, run, resume or debug a sweep.

    python run_sweep.py sweeps/demo.yaml                      # every trial on a local Ray
    python run_sweep.py sweeps/casme2_ablation.yaml --dry-run # the plan; reads annotations only
    python run_sweep.py sweeps/X.yaml --resume                # continue an interrupted sweep
    python run_sweep.py sweeps/X.yaml --address auto          # on a running Ray cluster
    python run_sweep.py sweeps/X.yaml --trial full/sub01/0    # one trial in this process, no Ray

Mode: a config with a `search` section runs the Optuna search (`mer.sweep.search`; then, with
`search.holdout_subjects`, the hold-out evaluation it generates as OUT/search/holdout.yaml, itself
an ablation sweep), otherwise the ablation grid (every variant × fold × seed). Errors a user can
cause print one line, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.errors import MerError
from mer.sweep.space import load_search_config

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_sweep.py",
        description="Run a mer sweep (ablation grid or Optuna search) with Ray Tune.",
    )
    p.add_argument("config", help="sweep YAML (see sweeps/)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )
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
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def missing_media_roots(data_cfg: Any) -> list[str]:
    """`key: path` for each media folder of `data_cfg` that is not a folder on this machine.

    A dry run reads annotations only (so GPU-hours can be planned on a laptop without the
    media); it still says which roots are missing here, so a typo shows before `mer prepare`.
    """
    if data_cfg.is_synthetic:
        return []
    roots = [("data.root", data_cfg.root)]
    roots += [(f"data.sources.{n}.root", s.root) for n, s in (data_cfg.sources or {}).items()]
    return [f"{k}: {r}" for k, r in roots if r and not Path(r).expanduser().is_dir()]


def dry_run(cfg: ExperimentConfig, args: argparse.Namespace) -> int:
    from mer.config import config_hash
    from mer.data.cache import known_coverage, load_samples_only
    from mer.data.checks import check_table
    from mer.experiment.plan import (
        build_plan,
        describe,
        estimate_search_gpu_hours,
        model_stats_or_none,
        variant_configs,
    )

    memo: dict[str, tuple] = {}

    def samples_for(data_cfg):  # noqa: ANN001, ANN202 - variants often share their annotations
        d = data_cfg
        key = config_hash(
            {
                "d": d.dataset,
                "r": d.root,
                "a": d.annotations,
                "s": d.sources,
                "y": d.synthetic if d.is_synthetic else None,
                "l": d.labels,
                "c": d.cache_dir if d.is_synthetic else None,
            }
        )
        if key not in memo:
            memo[key] = load_samples_only(data_cfg)
        else:  # shared annotations; this variant's own policy/frame checks still apply
            check_table(memo[key][0], data_cfg)
        return memo[key]

    plan = build_plan(cfg, samples_for, stats_for=model_stats_or_none, faces_for=known_coverage)
    missing = sorted(
        {m for v in variant_configs(cfg).values() for m in missing_media_roots(v.data)}
    )
    conc = str(args.max_concurrent or cfg.resources.max_concurrent or "computed at run time")
    print(describe(plan, max_concurrent=conc))
    for line in missing:
        print(f"WARNING: {line} is not a folder on this machine; `mer prepare` here would fail")
    from mer.data.preflight import dry_run_lines

    print("\n".join(dry_run_lines(cfg)))  # media without decoding, sizes against disk/memory
    if cfg.search is not None:
        n = cfg.search.holdout_subjects
        after = (
            f"; then the hold-out evaluation: {n} LOSO fold(s) per variant and seed" if n else ""
        )
        hours = estimate_search_gpu_hours(plan)
        print(
            f"Search mode: {cfg.search.trials} configuration(s) per variant ({cfg.search.sampler}"
            f" sampler), each one Tune trial per fold of seed {cfg.seeds[0]}; the trial count "
            f"and GPU-hours above are the ablation grid, for scale{after}"
        )
        if hours is not None:
            print(
                f"Estimated GPU-hours of the search: at most {hours:.3g} (every configuration "
                "on every fold, no pruning, plus the hold-out evaluation when it runs; at the "
                "base model's cost, same assumptions)"
            )
    return 0


def run_one_trial(cfg: ExperimentConfig, text: str, out: Path, *, resume: bool) -> int:
    """The debug path: the same `execute_trial` a Tune trial runs, in this process, no Ray."""
    from mer.config import variant_config
    from mer.data.cache import prepare_data
    from mer.errors import ConfigError
    from mer.experiment.plan import build_plan, data_key_of
    from mer.experiment.store import ResultsStore
    from mer.sweep.trial import LocalReporter, TestHooks, execute_trial

    variant = text.split("/")[0]
    if not variant or text.count("/") not in (1, 2):
        raise ConfigError(f"--trial {text!r}: expected VARIANT/FOLD[/SEED], e.g. full/sub01/0")
    if variant not in cfg.ablations:
        raise ConfigError(
            f"--trial {text!r}: unknown variant {variant!r}; this sweep has "
            f"{', '.join(cfg.ablations)}"
        )
    vcfg = variant_config(cfg, variant)
    data = prepare_data(vcfg.data)
    key = data_key_of(vcfg.data)
    plan = build_plan(
        cfg, lambda d: (data.samples, list(data.class_names)), variants={variant: vcfg}
    )
    assert plan.variants[variant].data_key == key
    spec = plan.resolve_trial(text)
    debug = out / "debug"
    store = ResultsStore(debug)
    reporter = LocalReporter(store.trial_dir(spec) / "checkpoint", resume=resume)
    log.info("trial %s in this process (no Ray); results in %s", spec.id, store.trial_dir(spec))
    payload = execute_trial(
        spec,
        vcfg,
        data,
        plan.fold(spec),
        reporter,
        test_hooks=TestHooks.from_env(),
        report_every_s=0.0,
        plan_oracle=plan.variants[variant].oracle,
    )
    store.write_trial(spec, payload)
    sc = payload["test_scores"]
    tag = " [oracle]" if payload["oracle"] else ""
    print(
        f"{spec.id}{tag}: test uf1 {sc['uf1']:.4f} uar {sc['uar']:.4f} acc {sc['acc']:.4f} "
        f"on {sum(1 for s in payload['predictions']['split'] if s == 'test')} clip(s); "
        f"selected epoch {payload['selected_epoch']}; {payload['timings']['total']:.1f} s"
    )
    print(f"files: {store.trial_dir(spec)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    t0 = time.monotonic()
    try:
        cfg = load_search_config(args.config, args.set)  # a bad space fails here, first
        if args.dry_run:
            return dry_run(cfg, args)
        from mer.sweep.runner import RunOptions, output_dir, storage_key

        out = output_dir(cfg, args.out)
        if args.trial:
            return run_one_trial(cfg, args.trial, out, resume=args.resume)
        opts = RunOptions(
            out=out,
            resume=args.resume,
            overwrite=args.overwrite,
            max_concurrent=args.max_concurrent,
            wandb=args.wandb,
            address=args.address,
            storage=storage_key(args.storage),
            num_cpus=args.num_cpus,
            argv=list(sys.argv if argv is None else argv),
        )
        if cfg.search is not None:
            from mer.sweep.search import run_search

            status = run_search(cfg, opts)
        else:
            from mer.sweep.runner import run_ablation

            status = run_ablation(cfg, opts)
        log.info("sweep %s finished in %.1f s (status %d)", cfg.name, time.monotonic() - t0, status)
        return status
    except MerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a folder given as the config, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
