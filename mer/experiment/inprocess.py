"""Folds of one sweep variant trained one after another in this process (`mer train`).

Why: debugging and the non-distributed baseline. No Ray is imported, so breakpoints and pdb work,
and the folds are those a sweep's trials of that variant and seed run (a search config's held-out
subjects are in none). Outputs, under `out` (default `{output}/{name}/debug/{variant}/{seed}`):
per fold the prediction log (CSV + MEGC text), history, result.json and the resolved variant
config; for every fold also the pooled predictions, MEGC file and report.json.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import ExperimentConfig, dump_yaml, variant_config
from mer.data import cache
from mer.errors import ConfigError
from mer.experiment.labels import subject_dependent_reason
from mer.experiment.plan import search_holdout
from mer.metrics import pooled_report
from mer.predlog import megc_file_name, save_fold_result, write_megc, write_predictions
from mer.protocol import Fold, fold_by_name, make_folds
from mer.train import FoldResult, run_fold

log = logging.getLogger(__name__)

# called after each fold of `train_all_folds` with (result, variant config, its folder)
OnFold = Callable[[FoldResult, ExperimentConfig, Path], None]


def default_out(cfg: ExperimentConfig, variant: str, seed: int) -> Path:
    return Path(cfg.output).expanduser() / cfg.name / "debug" / variant / str(seed)


def _folds(
    cfg: ExperimentConfig, variant: str, seed: int, progress: bool
) -> tuple[ExperimentConfig, Any, list[Fold], dict[str, Any]]:
    """The variant's config, data and folds, and the labels of its MEGC file names
    (predlog.megc_file_name): a subset of the protocol's subjects is partial; clips standing in
    for subjects are subject-dependent."""
    vcfg = variant_config(cfg, variant)
    data = cache.prepare_data(vcfg.data, progress=progress)  # looked up here: tests patch it
    # a search config's folds are those its search trials ran: held-out subjects excluded
    held = search_holdout(vcfg, data.samples)
    folds = make_folds(data.samples, vcfg.protocol, seed, exclude_subjects=held)
    if held:
        log.info("search config: %d held-out subject(s) in no fold: %s", len(held), held)
    labels = {
        "subjects_total": int(data.samples["subject"].astype(str).nunique()) - len(held),
        "subject_dependent": subject_dependent_reason(vcfg) is not None,
    }
    return vcfg, data, folds, labels


def train_fold(
    cfg: ExperimentConfig,
    variant: str,
    seed: int,
    fold: str,
    out: Path | None = None,
    *,
    progress: bool = True,
) -> tuple[FoldResult, ExperimentConfig, Path]:
    """Train and evaluate one fold (`fold`: its name, or the subject when unambiguous) and save
    its files; returns the result, the variant's config and the folder written."""
    vcfg, data, folds, labels = _folds(cfg, variant, seed, progress)
    try:
        found = fold_by_name(folds, fold)
    except ConfigError as exc:
        if not vcfg.protocol.folds:
            raise
        raise ConfigError(
            f"{exc} (protocol.folds restricts this sweep to {list(vcfg.protocol.folds)})"
        ) from None
    out = out or default_out(cfg, variant, seed) / found.safe_name
    result = run_fold(vcfg, data, found, seed, progress=progress)
    extra = {"variant": variant, "seed": seed}
    # a fold folder's file is one fold by construction: labelled subject-dependent only
    save_fold_result(
        result, out, config_yaml=dump_yaml(vcfg), extra_columns=extra,
        subject_dependent=labels["subject_dependent"],
    )  # fmt: skip
    return result, vcfg, out


def train_all_folds(
    cfg: ExperimentConfig,
    variant: str,
    seed: int,
    out: Path | None = None,
    *,
    progress: bool = True,
    on_fold: OnFold | None = None,
) -> tuple[dict[str, Any], Path]:
    """Every fold in protocol order, then the pooled predictions and their MEGC report; returns
    the report (mer.metrics.pooled_report) and the folder written."""
    vcfg, data, folds, labels = _folds(cfg, variant, seed, progress)
    config_yaml = dump_yaml(vcfg)
    extra = {"variant": variant, "seed": seed}
    out = out or default_out(cfg, variant, seed)
    tables = []
    for i, fold in enumerate(folds, 1):
        log.info("fold %d/%d: %s", i, len(folds), fold.name)
        result = run_fold(vcfg, data, fold, seed, progress=progress)
        fold_out = out / fold.safe_name
        save_fold_result(
            result, fold_out, config_yaml=config_yaml, extra_columns=extra,
            subject_dependent=labels["subject_dependent"],
        )  # fmt: skip
        if on_fold is not None:
            on_fold(result, vcfg, fold_out)
        tables.append(result.predictions.assign(**extra))
    pred = pd.concat(tables, ignore_index=True)
    write_predictions(pred, out / "predictions.csv")
    write_megc(pred, out / megc_file_name(pred, **labels))
    (out / "config.yaml").write_text(config_yaml)
    report = pooled_report(pred, vcfg.model.num_classes, data.class_names)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report, out
