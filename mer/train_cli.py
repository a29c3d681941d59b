"""`mer train SWEEP.yaml --fold SUBJECT`: one fold in this process, for debugging.

No Ray is imported, so breakpoints and pdb work. `--all-folds` runs the whole protocol one fold
after another in this process (the non-distributed baseline) and prints the pooled MEGC report.
Outputs (`--out`, default `{output}/{name}/debug/{variant}/{seed}/{fold_safe}`): the prediction
log (CSV + MEGC text), history, result.json and the resolved variant config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import ExperimentConfig, dump_yaml, variant_config
from mer.errors import ConfigError
from mer.sweep.space import load_search_config

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train and evaluate one fold in this process (debugging; no Ray)",
        description="Train one fold (or every fold, sequentially) of a sweep variant in this "
        "process and print its MEGC metrics. No Ray: breakpoints work.",
    )
    p.add_argument("config", help="sweep YAML")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--fold", help="fold / test subject, e.g. casme2/sub01 (or sub01 when unambiguous)"
    )
    which.add_argument(
        "--all-folds", action="store_true", help="run every fold sequentially; pooled metrics"
    )
    p.add_argument("--variant", help="ablation variant (default: the first one)")
    p.add_argument("--seed", type=int, help="seed (default: the first of `seeds`)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument("--out", help="output folder (default {output}/{name}/debug/VARIANT/SEED/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _default_out(cfg: ExperimentConfig, variant: str, seed: int) -> Path:
    return Path(cfg.output).expanduser() / cfg.name / "debug" / variant / str(seed)


def _oracle_note(result: Any) -> str:
    why = []
    if result.oracle_selection:
        why.append("epoch selected on the test subject")
    if result.oracle_input:
        why.append("AU regions from ground-truth annotation")
    return f"ORACLE ({'; '.join(why)})" if why else ""


def _fmt(scores: dict[str, float] | None) -> str:
    if not scores:
        return "-"
    return "  ".join(f"{k} {scores[k]:.4f}" for k in ("uf1", "uar", "acc"))


def _subjects(pred: Any, split: str) -> str:
    """The subjects of a split's prediction rows, so a debug run says who it tested and
    validated on."""
    if "subject" not in pred:
        return "?"
    names = sorted(pred.loc[pred["split"] == split, "subject"].astype(str).unique())
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else "")
    return shown or "no subject"


def print_fold(result: Any, cfg: ExperimentConfig, out: Path | None = None) -> None:
    pred = result.predictions
    n_test = int((pred["split"] == "test").sum())
    n_val = int((pred["split"] == "val").sum())
    lines = [
        f"fold {result.fold}  seed {result.seed}  {_oracle_note(result)}".rstrip(),
        f"  test ({n_test} clips of {_subjects(pred, 'test')})  {_fmt(result.test_scores)}",
    ]
    if result.val_scores is not None:
        lines.append(
            f"  val  ({n_val} clips of {_subjects(pred, 'val')})  {_fmt(result.val_scores)}"
        )
    trained = len(result.history)
    stop = " (stopped early)" if result.stopped else ""
    lines.append(
        f"  selected epoch {result.selected_epoch} of {trained}{stop} "
        f"({cfg.protocol.selection}); params {result.params:,}"
    )
    t = result.timings
    lines.append("  seconds: " + "  ".join(f"{k} {t[k]:.2f}" for k in t))
    if out is not None:
        lines.append(f"  wrote {out}")
    print("\n".join(lines))


def print_pooled(report: dict[str, Any], variant: str, seed: int) -> None:
    oracle = "  ORACLE" if report.get("oracle") else ""
    print(f"pooled over folds: variant {variant}  seed {seed}  ({report['n']} test clips){oracle}")
    # "composite" only where there are datasets to compose (megc2019); else just "pooled"
    label = "composite" if report.get("per_dataset") else "pooled"
    print(f"  {label:<10} {_fmt(report['composite'])}")
    for ds, scores in (report.get("per_dataset") or {}).items():
        print(f"  {ds:<10} {_fmt(scores)}  ({report['per_dataset_n'][ds]} clips)")
    pf = report.get("per_fold_nonstandard")
    if pf:
        print(
            f"  per-fold mean uf1 {pf['mean_uf1']:.4f}  uar {pf['mean_uar']:.4f}  acc "
            f"{pf['mean_acc']:.4f} over {pf['folds']} folds ({pf['note']})"
        )


def run(args: argparse.Namespace) -> int:
    from mer.data.cache import prepare_data
    from mer.experiment.labels import subject_dependent_reason
    from mer.experiment.plan import search_holdout
    from mer.metrics import pooled_report
    from mer.predlog import megc_file_name, save_fold_result, write_megc, write_predictions
    from mer.protocol import fold_by_name, make_folds
    from mer.train import run_fold

    cfg = load_search_config(args.config, args.set)  # a search config's space too, before data
    variant = args.variant or cfg.variants[0]
    vcfg = variant_config(cfg, variant)
    seed = cfg.seeds[0] if args.seed is None else int(args.seed)
    data = prepare_data(vcfg.data, progress=not args.no_progress)
    # a search config's folds are those its search trials ran: held-out subjects excluded
    held = search_holdout(vcfg, data.samples)
    folds = make_folds(data.samples, vcfg.protocol, seed, exclude_subjects=held)
    if held:
        log.info("search config: %d held-out subject(s) in no fold: %s", len(held), held)
    config_yaml = dump_yaml(vcfg)
    extra = {"variant": variant, "seed": seed}
    # labels of the MEGC file names (predlog.megc_file_name): a subset of the protocol's
    # subjects is partial; clips standing in for subjects are subject-dependent
    labels = {
        "subjects_total": int(data.samples["subject"].astype(str).nunique()) - len(held),
        "subject_dependent": subject_dependent_reason(vcfg) is not None,
    }
    base = Path(args.out).expanduser() if args.out else None

    if not args.all_folds:
        try:
            fold = fold_by_name(folds, args.fold)
        except ConfigError as exc:
            if not vcfg.protocol.folds:
                raise
            raise ConfigError(
                f"{exc} (protocol.folds restricts this sweep to {list(vcfg.protocol.folds)})"
            ) from None
        out = base or _default_out(cfg, variant, seed) / fold.safe_name
        result = run_fold(vcfg, data, fold, seed, progress=not args.no_progress)
        # a fold folder's file is one fold by construction: labelled subject-dependent only
        save_fold_result(
            result, out, config_yaml=config_yaml, extra_columns=extra,
            subject_dependent=labels["subject_dependent"],
        )  # fmt: skip
        print_fold(result, vcfg, out)
        return 0

    out = base or _default_out(cfg, variant, seed)
    tables = []
    for i, fold in enumerate(folds, 1):
        log.info("fold %d/%d: %s", i, len(folds), fold.name)
        result = run_fold(vcfg, data, fold, seed, progress=not args.no_progress)
        fold_out = out / fold.safe_name
        save_fold_result(
            result, fold_out, config_yaml=config_yaml, extra_columns=extra,
            subject_dependent=labels["subject_dependent"],
        )  # fmt: skip
        print_fold(result, vcfg, fold_out)
        tables.append(result.predictions.assign(**extra))
    pred = pd.concat(tables, ignore_index=True)
    write_predictions(pred, out / "predictions.csv")
    write_megc(pred, out / megc_file_name(pred, **labels))
    (out / "config.yaml").write_text(config_yaml)
    report = pooled_report(pred, vcfg.model.num_classes, data.class_names)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_pooled(report, variant, seed)
    print(f"  wrote {out}")
    sys.stdout.flush()
    return 0
