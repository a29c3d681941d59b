"""The ablation table: pooled metrics per (variant, seed), then mean ± std over seeds.

Every number is recomputed from the prediction logs (never copied from a trial's own summary), so
the table and the logs cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mer.metrics import POOLED_METRICS, always_class_baseline, pooled_scores
from mer.report.data import STATES, RunData

METRICS = POOLED_METRICS
_NOT_TABLED = ("n_test", "confusion")  # `n` is counted above; confusions come from confusion_for

# MODEL.md §7: the paper's numbers, computed under the original's per-subject protocol with the
# epoch chosen on the test subject; shown beside matching variants, never compared as equals.
# Keys: (dataset, variant name) -> {metric: value}.
PAPER_ROWS: dict[tuple[str, str], dict[str, float]] = {
    ("smic", "single_ce"): {"uf1": 0.517, "uar": 0.533},
    ("smic", "single_wce"): {"uf1": 0.559, "uar": 0.563},
    ("smic", "single_wce_lstm"): {"uf1": 0.686, "uar": 0.702},
    ("smic", "single_wce_gru"): {"uf1": 0.703, "uar": 0.715},
    ("smic", "single_wce_gru_cbam"): {"uf1": 0.656, "uar": 0.681},
    ("smic", "dual_cbam"): {"uf1": 0.692, "uar": 0.721},
    ("smic", "dual_ec_cbam"): {"uf1": 0.732, "uar": 0.737},
    ("smic", "dual_ec_cbam_mha"): {"uf1": 0.692, "uar": 0.722},
    ("smic", "full"): {"uf1": 0.745, "uar": 0.751},
    ("samm", "full"): {"uf1": 0.860, "uar": 0.885},
    ("samm", "au_off"): {"uf1": 0.720},
    ("casme2", "full"): {"uf1": 0.944, "uar": 0.956},
    ("casme2", "au_off"): {"uf1": 0.818},
    ("casme3", "full"): {"uf1": 0.8036, "uar": 0.8161},
    ("deception", "full"): {"acc": 0.8360},
}
PAPER_NOTE = (
    "paper: the original's per-subject scores averaged over subjects with the best epoch chosen on "
    "the test subject (MODEL.md §7); not comparable with pooled LOSO numbers"
)


def seed_scores(run: RunData) -> pd.DataFrame:
    """One row per (variant, seed): pooled test metrics, per-dataset parts, fold counts."""
    rows = []
    # A search's configurations are compared on their inner-validation objective only: showing
    # every configuration's test score would invite choosing on the test folds.
    split = "val" if run.mode == "search" else "test"
    test = run.predictions[run.predictions["split"] == split] if len(run.predictions) else None
    seeds = run.plan.get("seeds") or sorted(run.predictions["seed"].unique().tolist())
    for variant in run.variants:
        k = len(run.classes_of(variant))
        for seed in seeds:
            expected = run.expected_folds(variant, int(seed))
            sub = (
                test[(test["variant"] == variant) & (test["seed"] == int(seed))]
                if test is not None
                else pd.DataFrame()
            )
            done = sorted(sub["fold"].unique().tolist()) if len(sub) else []
            failed = [
                f
                for f in expected
                if run.trial_status.get(f"{variant}/{f}/s{seed}") in ("failed", "error")
            ]
            row: dict[str, Any] = {
                "variant": variant,
                "seed": int(seed),
                "folds_expected": len(expected) or len(done),
                "folds_done": len(done),
                "folds_failed": len(failed),
                "n": len(sub),
            }
            if len(sub):
                scores = pooled_scores(sub, k, split=split)
                row.update({key: v for key, v in scores.items() if key not in _NOT_TABLED})
            rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series) -> tuple[float, float]:
    vals = values.dropna().to_numpy(dtype=float)
    if not len(vals):
        return math.nan, math.nan
    # one seed has no spread to report: NaN ("–" in tables), not a reassuring 0.000
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else math.nan


def paper_dataset(run: RunData, variant: str) -> str | None:
    """The real dataset a variant's numbers are on, for PAPER_ROWS; None for generated data.

    A synthetic run (`data.dataset: synthetic`, even with `data.synthetic.layout: casme2` and
    `casme2/...` subjects) is no evidence about the paper's numbers, so it gets none."""
    data = run.config.get("data") or {}
    dataset = data.get("dataset")
    overrides = run.variant_info(variant).get("overrides") or {}
    if isinstance(overrides, dict) and "data.dataset" in overrides:
        dataset = overrides["data.dataset"]
    dataset = str(dataset or "")
    return dataset if dataset and dataset != "synthetic" else None


def _state(run: RunData, variant: str, complete_folds: bool) -> tuple[str, str | None]:
    """A search configuration's state as the search summary records it (data.STATES), and why."""
    rec = run.configs.get(variant) or {}
    state = rec.get("state")
    if state is None:  # not in the summary (yet): a search still running or interrupted
        return ("complete" if complete_folds else "running"), None
    return STATES.get(state, str(state).lower()), rec.get("reason")


def ablation_table(run: RunData) -> pd.DataFrame:
    """Per variant: UF1/UAR/acc mean ± std over seeds (sample std; NaN for one seed), per-dataset
    parts, params, GFLOPs, UF1 difference to the reference variant (`delta_reference`), folds
    finished/failed, oracle tag, paper number (real-dataset runs only).

    For a search each row is one configuration, with its own params/GFLOPs (search summary or
    its fold results) and its `state` as the search summary has it (complete / PRUNED / failed /
    running, with `reason`): only a configuration the search completed is `complete`; a pruned
    one's scores cover the folds the search counted before pruning it."""
    per_seed = seed_scores(run)
    search = run.mode == "search"
    rows = []
    for variant in run.variants:
        sub = per_seed[per_seed["variant"] == variant]
        info = run.variant_info(variant)
        stats = info.get("stats") or {}
        complete = bool(len(sub)) and bool(
            (sub["folds_done"] == sub["folds_expected"]).all() and (sub["folds_failed"] == 0).all()
        )
        if search:
            state, reason = _state(run, variant, complete)
            complete = complete and state == "complete"
        row: dict[str, Any] = {
            "variant": variant,
            "oracle": bool(info.get("oracle", False))
            or bool(sub.get("oracle", pd.Series(dtype=bool)).fillna(False).any()),
            "seeds": int(sub["n"].gt(0).sum()),
            "folds": f"{int(sub['folds_done'].sum())}/{int(sub['folds_expected'].sum())}",
            "failed": int(sub["folds_failed"].sum()),
            "complete": complete,
            "params": stats.get("params"),
            "gflops": stats.get("gflops"),
        }
        if search:
            row["state"], row["reason"] = state, reason
        for col in [c for c in per_seed.columns if c in METRICS or "/" in c]:
            if col in sub:
                row[f"{col}_mean"], row[f"{col}_std"] = _mean_std(sub[col])
        paper = PAPER_ROWS.get((paper_dataset(run, variant), variant), {})
        for m in METRICS:
            row[f"paper_{m}"] = paper.get(m, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    if search:
        table.attrs["uncounted"] = list(run.uncounted)
    # a search's rows are configurations ranked by their objective: no ablation reference
    ref = None if run.mode == "search" else delta_reference(table)
    if ref is not None:
        base = float(table.loc[table["variant"] == ref, "uf1_mean"].iloc[0])
        table["delta_uf1"] = table["uf1_mean"] - base
        # a difference is only meaningful between like and like: oracle rows get none
        table.loc[table["oracle"], "delta_uf1"] = math.nan
        table.attrs["delta_reference"] = ref
    return table


def delta_reference(table: pd.DataFrame) -> str | None:
    """The variant UF1 differences are taken against: `full` when it is label-free, else the
    first label-free variant; None when every variant is oracle or there is no UF1.

    An oracle row (ground-truth AU crops, test-set epochs) as the reference would make every
    label-free variant look worse by the amount the oracle leaks (PROTOCOL.md §4.2-3).
    """
    if "uf1_mean" not in table or not len(table):
        return None
    clean = table[~table["oracle"].astype(bool) & table["uf1_mean"].notna()]
    if not len(clean):
        return None
    names = clean["variant"].tolist()
    return "full" if "full" in names else names[0]


def eval_split(run: RunData) -> str:
    """The split a run's per-configuration views show: a search's are its validation clips (the
    search folds' test subjects also validated other folds, so their test scores estimate
    nothing; a search's clean test numbers are its hold-out evaluation's own run)."""
    return "val" if run.mode == "search" else "test"


def per_subject_accuracy(run: RunData, variant: str) -> pd.DataFrame:
    """Accuracy per test subject (validation subject for a search; all seeds pooled) — a
    diagnostic, not a MEGC metric."""
    p = run.predictions
    sub = p[(p["split"] == eval_split(run)) & (p["variant"] == variant)]
    if not len(sub):
        return pd.DataFrame(columns=["subject", "acc", "n"])
    grouped = sub.assign(ok=(sub["true"] == sub["pred"]).astype(float)).groupby("subject")
    out = grouped["ok"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "acc", "size": "n"}).sort_values("subject")


def confusion_for(run: RunData, variant: str) -> np.ndarray:
    """Pooled confusion matrix of a variant, summed over seeds (validation clips for a search)."""
    from mer.metrics import confusion_matrix

    p = run.predictions
    sub = p[(p["split"] == eval_split(run)) & (p["variant"] == variant)]
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
    split = "val" if run.mode == "search" else "test"
    sub = p[(p["split"] == split) & (p["variant"] == v) & (p["seed"] == seed)]
    if not len(sub):
        return None
    return always_class_baseline(sub["true"].to_numpy(), len(run.classes_of(v)), cls=0)
