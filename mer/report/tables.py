"""The report's tables and per-variant views of a run.

The per-variant table is the one aggregation pipeline's (mer.experiment.aggregate), so the
report, the sweep's summary.csv/summary.md and W&B show the same rows. Here: the views only the
report draws (confusion matrices, per-subject accuracy, the always-negative baseline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer.experiment.aggregate import (  # noqa: F401 - the report's names for them
    METRICS,
    aggregate,
    delta_reference,
    seed_rows,
)
from mer.experiment.paper import PAPER_CONFIGS, PAPER_NOTE, paper_config  # noqa: F401
from mer.experiment.run import RunData
from mer.metrics import always_class_baseline, confusion_matrix


def ablation_table(run: RunData) -> pd.DataFrame:
    """Per variant (per configuration for a search): mer.experiment.aggregate.variant_table."""
    return aggregate(run).table


def eval_split(run: RunData) -> str:
    """The split a run's per-configuration views show (RunData.split: a search's are its
    validation clips)."""
    return run.split


def _variant_rows(run: RunData, variant: str) -> pd.DataFrame:
    p = run.predictions
    return p[(p["split"] == run.split) & (p["variant"] == variant)]


def per_subject_accuracy(run: RunData, variant: str) -> pd.DataFrame:
    """Accuracy per test subject (validation subject for a search; all seeds pooled) — a
    diagnostic, not a MEGC metric."""
    sub = _variant_rows(run, variant)
    if not len(sub):
        return pd.DataFrame(columns=["subject", "acc", "n"])
    grouped = sub.assign(ok=(sub["true"] == sub["pred"]).astype(float)).groupby("subject")
    out = grouped["ok"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "acc", "size": "n"}).sort_values("subject")


def confusion_for(run: RunData, variant: str) -> np.ndarray:
    """Pooled confusion matrix of a variant, summed over seeds (validation clips for a search)."""
    sub = _variant_rows(run, variant)
    k = len(run.classes_of(variant))
    if not len(sub):
        return np.zeros((k, k), dtype=np.int64)
    return confusion_matrix(sub["true"].to_numpy(), sub["pred"].to_numpy(), k)


def always_negative_baseline(run: RunData) -> dict[str, float] | None:
    """Always predicting class 0 on the first variant's test clips (PROTOCOL.md §3)."""
    p = run.predictions
    if not len(p):
        return None
    v = run.variants[0]
    seed = int(p["seed"].min())
    sub = p[(p["split"] == run.split) & (p["variant"] == v) & (p["seed"] == seed)]
    if not len(sub):
        return None
    return always_class_baseline(sub["true"].to_numpy(), len(run.classes_of(v)), cls=0)
