"""`mer train SWEEP.yaml --fold SUBJECT | --all-folds`: folds in this process, for debugging.

The training and files are mer.experiment.inprocess's; this module parses and prints each fold's
MEGC metrics (and, with `--all-folds`, the pooled report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        parents=[common.parent()],
        help="train and evaluate one fold in this process (debugging; no Ray)",
        description="Train one fold (or every fold, sequentially) of a sweep variant in this "
        "process and print its MEGC metrics. No Ray: breakpoints work.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--fold", help="fold / test subject, e.g. casme2/sub01 (or sub01 when unambiguous)"
    )
    which.add_argument(
        "--all-folds", action="store_true", help="run every fold sequentially; pooled metrics"
    )
    p.add_argument("--variant", help="ablation variant (default: the first one)")
    p.add_argument("--seed", type=int, help="seed (default: the first of `seeds`)")
    p.add_argument("--out", help="output folder (default {output}/{name}/debug/VARIANT/SEED/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch, pandas and the config schema are slow imports; `mer --help` stays fast
    from mer.experiment.claim import claim
    from mer.sweep.space import load_search_config

    cfg = load_search_config(args.config, args.set)  # a search config's space too, before data
    out = Path(args.out).expanduser() if args.out else None
    if out is None:
        return _train(args, cfg, None)
    # not while a sweep (or another `mer train`) writes that folder
    with claim(out, "train", command=getattr(args, "argv", None)):
        return _train(args, cfg, out)


def _train(args: argparse.Namespace, cfg: Any, out: Path | None) -> int:
    from mer.experiment.inprocess import train_all_folds, train_fold  # lazy: imports torch

    variant = args.variant or cfg.variants[0]
    seed = cfg.seeds[0] if args.seed is None else int(args.seed)
    progress = not args.no_progress
    if not args.all_folds:
        result, vcfg, folder = train_fold(cfg, variant, seed, args.fold, out, progress=progress)
        print_fold(result, vcfg, folder)
        return 0
    report, folder = train_all_folds(cfg, variant, seed, out, progress=progress, on_fold=print_fold)
    print_pooled(report, variant, seed)
    print(f"  wrote {folder}")
    sys.stdout.flush()
    return 0


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


def print_fold(result: Any, cfg: Any, out: Path | None = None) -> None:
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
