"""MEGC metrics on pooled predictions (PROTOCOL.md §3).

The field's numbers are computed once on the pooled set of test predictions from every fold, over
the fixed class set ``range(num_classes)`` (never the labels that happen to be present):

- UF1 = mean_c F1_c,  F1_c = 2TP_c / (2TP_c + FP_c + FN_c)
- UAR = mean_c TP_c / N_c  (N_c = clips whose true class is c)
- acc = correct / total

Zero division, defined explicitly: a class with 2TP_c + FP_c + FN_c == 0 (never true, never
predicted) has F1_c = 0, and a class with N_c == 0 has recall 0. Both still count in the mean, so an
absent class pulls the score down (conservative). This is exactly scikit-learn's
``f1_score/recall_score(average="macro", labels=range(K), zero_division=0)``, which computes
them here; this module adds the input checks (class indices named in errors) and the pooling.

Per-fold averages exist only as a labelled, non-standard extra: tiny LOSO folds (one clip, one
class) make them a different and much noisier number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mer.errors import DataError

log = logging.getLogger(__name__)

PER_FOLD_NOTE = "per-fold average; not the MEGC metric"


class MetricInputError(DataError, ValueError):
    """Labels or predictions that cannot be scored (bad value, length mismatch, empty input).

    A ValueError for callers passing arrays, and a DataError (a MerError) when the input is a
    user's prediction log, so the CLI prints it without a traceback.
    """


def _sk() -> Any:
    """scikit-learn's metrics module, imported on first use: it takes about a second to import
    (scipy.stats with it), and every sweep process (the driver, each trial's Ray worker)
    imports this module before it scores anything; imported here, that second is paid when
    the first scores are computed, not before the first trial can start."""
    from sklearn import metrics  # lazy: ~1 s (scipy.stats); see the docstring

    return metrics


# ------------------------------------------------------------------------------------- arrays
def _labels(values: Any, num_classes: int, what: str) -> np.ndarray:
    """`values` as int64 class indices in [0, num_classes); error names the first bad value."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MetricInputError(f"{what}: expected a 1-D sequence of labels, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
    elif arr.dtype.kind == "b":
        raise MetricInputError(f"{what}: expected integer class indices, got booleans")
    else:
        out = np.empty(arr.shape, dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise MetricInputError(
                    f"{what}: label {v!r} at position {i} is not a class index"
                ) from None
            if not np.isfinite(f) or not f.is_integer():
                raise MetricInputError(
                    f"{what}: label {v!r} at position {i} is not a class index "
                    f"(expected an integer in [0, {num_classes}))"
                )
            out[i] = int(f)
    bad = np.flatnonzero((out < 0) | (out >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise MetricInputError(
            f"{what}: label {int(out[i])} at position {i} is outside [0, {num_classes}) "
            f"({bad.size} such value(s))"
        )
    return out


def _pair(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise MetricInputError(f"num_classes: expected an integer, got {num_classes!r}")
    if num_classes < 1:
        raise MetricInputError(f"num_classes: expected >= 1, got {num_classes}")
    t = _labels(y_true, int(num_classes), "y_true")
    p = _labels(y_pred, int(num_classes), "y_pred")
    if t.shape != p.shape:
        raise MetricInputError(f"y_true and y_pred differ in length ({t.shape[0]} vs {p.shape[0]})")
    if t.size == 0:
        raise MetricInputError("no predictions to score (empty y_true / y_pred)")
    return t, p


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; rows = true class, columns = predicted class."""
    t, p = _pair(y_true, y_pred, num_classes)
    return _counts(t, p, num_classes)


def _counts(t: np.ndarray, p: np.ndarray, num_classes: int) -> np.ndarray:
    return _sk().confusion_matrix(t, p, labels=np.arange(num_classes)).astype(np.int64)


def _per_class(t: np.ndarray, p: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall, f1 and support over the fixed class set (zero division
    gives 0, see the module docstring); `t`, `p` already checked by `_pair`/`_labels`."""
    precision, recall, f1, support = _sk().precision_recall_fscore_support(
        t, p, labels=np.arange(num_classes), average=None, zero_division=0
    )
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _scores(t: np.ndarray, p: np.ndarray, num_classes: int) -> dict[str, float]:
    pc = _per_class(t, p, num_classes)
    return {
        "uf1": float(pc["f1"].mean()),
        "uar": float(pc["recall"].mean()),
        "acc": float(_sk().accuracy_score(t, p)),
    }


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """uf1 / uar / acc from a (K, K) confusion matrix over the fixed class set, with the module's
    zero-division rules; the resampling code (mer.experiment.resampling) scores pooled
    confusions with it, where no per-clip labels exist any more."""
    cm = np.asarray(cm, dtype=np.int64)
    total = int(cm.sum())
    if total == 0:
        raise MetricInputError("no predictions to score (empty confusion matrix)")
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    denom = 2 * tp + (cm.sum(axis=0) - tp) + (support - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    return {"uf1": float(f1.mean()), "uar": float(recall.mean()), "acc": float(tp.sum() / total)}


def megc_scores(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, float]:
    """{"uf1", "uar", "acc"} on pooled predictions over classes range(num_classes)."""
    t, p = _pair(y_true, y_pred, num_classes)
    return _scores(t, p, int(num_classes))


def always_class_baseline(y_true: Any, num_classes: int, cls: int = 0) -> dict[str, float]:
    """Scores of predicting class `cls` for every clip (always-negative: cls=0 under megc3)."""
    t = _labels(y_true, num_classes, "y_true")
    _labels([cls], num_classes, "cls")
    return megc_scores(t, np.full_like(t, cls), num_classes)


# ------------------------------------------------------------------------------ prediction logs
def pooled_report(
    pred: pd.DataFrame,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    *,
    split: str | None = "test",
) -> dict[str, Any]:
    """MEGC report of one run's prediction table (one variant and seed; mer.predlog columns).

    Keeps rows with ``split == split`` (None: every row). Returns
    ``{"composite": scores, "n": rows, "per_dataset": {ds: scores}, "per_dataset_n": {ds: n},
    "per_fold_nonstandard": {...}, "confusion": [[...]], "per_class": [...], "oracle": bool}``.
    ``per_dataset`` parts come from the same pooled predictions and appear only when the table
    holds more than one dataset; ``per_fold_nonstandard`` only when it has a ``fold`` column;
    ``oracle`` only when it has an ``oracle`` column (True if any row is oracle).
    """
    if not isinstance(pred, pd.DataFrame):
        raise MetricInputError(f"prediction table: expected a DataFrame, got {type(pred).__name__}")
    if class_names is not None and len(class_names) != num_classes:
        raise MetricInputError(
            f"class_names: expected {num_classes} names (num_classes), got {len(class_names)}"
        )
    missing = [c for c in ("true", "pred") if c not in pred.columns]
    if split is not None and "split" not in pred.columns:
        missing.append("split")
    if missing:
        raise MetricInputError(
            f"prediction table: missing column(s) {', '.join(missing)} "
            f"(has {', '.join(map(str, pred.columns))})"
        )
    rows = pred if split is None else pred[pred["split"] == split]
    if rows.empty:
        where = "" if split is None else f" with split == {split!r}"
        raise MetricInputError(f"prediction table: no rows{where} to score")
    if "sample_id" in rows.columns:
        # A clip is tested in exactly one fold; a validation clip may serve several folds.
        by_fold = split != "test" and "fold" in rows.columns
        key = ["fold", "sample_id"] if by_fold else ["sample_id"]
        dup = rows.loc[rows.duplicated(key), "sample_id"]
        if len(dup):
            scope = "" if len(key) == 1 else " within one fold"
            raise MetricInputError(
                f"prediction table: sample_id {dup.iloc[0]!r} appears more than once{scope} "
                f"({dup.nunique()} duplicated id(s)); pool one prediction per clip — filter the "
                "table to one variant and seed first"
            )
    t = _labels(rows["true"].to_numpy(), num_classes, "column 'true'")
    p = _labels(rows["pred"].to_numpy(), num_classes, "column 'pred'")
    cm = _counts(t, p, num_classes)
    pc = _per_class(t, p, num_classes)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    report: dict[str, Any] = {
        "composite": _scores(t, p, num_classes),
        "n": int(len(rows)),
        "confusion": cm.tolist(),
        "class_names": names,
        "per_class": [
            {
                "class": names[c],
                "f1": float(pc["f1"][c]),
                "recall": float(pc["recall"][c]),
                "precision": float(pc["precision"][c]),
                "support": int(pc["support"][c]),
                "predicted": int(cm[:, c].sum()),
            }
            for c in range(num_classes)
        ],
    }
    if "dataset" in rows.columns:
        ds_col = rows["dataset"].astype(str).to_numpy()
        datasets = sorted(set(ds_col))
        if len(datasets) > 1:
            report["per_dataset"] = {
                ds: _scores(t[ds_col == ds], p[ds_col == ds], num_classes) for ds in datasets
            }
            report["per_dataset_n"] = {ds: int((ds_col == ds).sum()) for ds in datasets}
    if "fold" in rows.columns:
        fold_col = rows["fold"].astype(str).to_numpy()
        per_fold = [
            _scores(t[fold_col == f], p[fold_col == f], num_classes) for f in sorted(set(fold_col))
        ]
        report["per_fold_nonstandard"] = {
            "mean_uf1": float(np.mean([s["uf1"] for s in per_fold])),
            "mean_uar": float(np.mean([s["uar"] for s in per_fold])),
            "mean_acc": float(np.mean([s["acc"] for s in per_fold])),
            "folds": len(per_fold),
            "note": PER_FOLD_NOTE,
        }
    if "oracle" in rows.columns:
        report["oracle"] = bool(_truthy(rows["oracle"]).any())
    return report


POOLED_METRICS = ("uf1", "uar", "acc")


def pooled_scores(
    pred: pd.DataFrame,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    *,
    split: str | None = "test",
) -> dict[str, Any]:
    """One flat row of pooled scores for one (variant, seed): uf1/uar/acc, `{dataset}/{metric}`
    parts, `n_test`, `oracle` and the confusion matrix (JSON).

    The sweep's summary files and `mer report` both build their rows here, so they cannot pool
    differently.
    """
    rep = pooled_report(pred, num_classes, class_names, split=split)
    row: dict[str, Any] = {m: rep["composite"][m] for m in POOLED_METRICS}
    row["n_test"] = rep["n"]
    for ds, scores in (rep.get("per_dataset") or {}).items():
        row.update({f"{ds}/{m}": scores[m] for m in POOLED_METRICS})
    row["confusion"] = json.dumps(rep["confusion"])
    row["oracle"] = bool(rep.get("oracle", False))
    return row


def _truthy(col: pd.Series) -> np.ndarray:
    """Boolean view of a flag column that may have been read back from CSV as text."""
    if col.dtype == bool:
        return col.to_numpy()
    return col.astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes"]).to_numpy()
