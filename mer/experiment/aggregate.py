"""The one pipeline from prediction logs to result tables: per (variant, seed) pooled rows, then
per variant mean ± std over seeds, subject-bootstrap intervals, counts, labels and paired
comparisons with the reference variant (mer.experiment.intervals).

Every number is recomputed from the trial prediction logs (never copied from a trial's own
summary), so the tables and the logs cannot disagree. summary.csv/.md, the printed table, the
report (CSV, Markdown, HTML, LaTeX) and the W&B summary runs are all renderings of `aggregate`'s
output (formatted by mer.experiment.formatting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mer.experiment import layout
from mer.experiment.intervals import add_uncertainty, report_settings, safe_clip_predictions
from mer.experiment.paper import PAPER_NOTE, paper_by_name  # noqa: F401 - PAPER_NOTE: report's
from mer.experiment.plan import changes_text
from mer.experiment.run import RunData, concat_predictions
from mer.experiment.searchlog import STATES
from mer.experiment.store import TrialRecord
from mer.metrics import POOLED_METRICS, pooled_scores

METRICS = POOLED_METRICS
STATUS_COMPLETE = "complete"


@dataclass
class Aggregate:
    table: pd.DataFrame  # per variant (per configuration for a search)
    seeds: list[dict[str, Any]]  # per (variant, seed)
    predictions: pd.DataFrame  # the rows pooled into them (every split)
    run: RunData | None = None  # what they were computed from (the report reuses it)


Pooled = dict[str, dict[int, pd.DataFrame]]  # variant -> seed -> the rows its scores pool


def aggregate(run: RunData) -> Aggregate:
    """Pooled rows per (variant, seed), the per-variant table, and the predictions they pool."""
    seeds, frames, pooled = _pool(run)
    return Aggregate(variant_table(run, seeds, pooled), seeds, concat_predictions(frames), run)


def seed_rows(run: RunData) -> list[dict[str, Any]]:
    """One row per (variant, seed): pooled metrics on the run's split (test; a search's val),
    per-dataset parts, `n_test`, fold counts, failed trial ids, oracle flag, training seconds."""
    return _pool(run)[0]


def _pool(run: RunData) -> tuple[list[dict[str, Any]], list[pd.DataFrame], Pooled]:
    """Seed rows, the prediction frames of the trials they count, and per (variant, seed) the
    rows pooled (`seed_row` of each (variant, seed) in plan order)."""
    skip = {u["trial"] for u in run.uncounted}
    by_key: dict[tuple[str, int], list] = {}
    for t in run.trials:
        if t.trial not in skip:
            by_key.setdefault((t.variant, t.seed), []).append(t)
    rows: list[dict[str, Any]] = []
    used: list[pd.DataFrame] = []
    pooled: Pooled = {}
    for variant in run.variants:
        for seed in run.seeds:
            row, frames, sub = seed_row(run, variant, seed, by_key.get((variant, seed), []))
            used += frames
            if sub is not None:
                pooled.setdefault(variant, {})[int(seed)] = sub
            rows.append(row)
    return rows, used, pooled


def seed_row(
    run: RunData, variant: str, seed: int, recs: list[TrialRecord]
) -> tuple[dict[str, Any], list[pd.DataFrame], pd.DataFrame | None]:
    """One (variant, seed)'s row from its trial records (`run.trial_predictions` holds the
    prediction frames of the finished ones), the frames it counts and the `run.split` rows it
    pooled (None: no scored rows). A (variant, seed) with a failed or missing fold is marked
    incomplete: its metrics are computed on the folds that finished and flagged so, never passed
    off as the full protocol. The full pass (`_pool`) and the sweep's per-trial pooling
    (mer.experiment.pooling) both build their rows here."""
    names = run.classes_of(variant)
    planned_oracle = bool(run.variant_info(variant).get("oracle", False))
    expected = run.expected_folds(variant, seed)
    if expected:  # the plan's trials only
        wanted = set(expected)
        recs = [r for r in recs if r.fold in wanted]
    done = [r for r in recs if r.done and r.trial in run.trial_predictions]
    failed = [r.trial for r in recs if not r.done]
    total = len(expected) or len(done)
    row: dict[str, Any] = {
        "variant": variant,
        "seed": int(seed),
        "folds_total": total,
        "folds_done": len(done),
        "folds_failed": len(failed),
        "failed_trials": " ".join(failed),
        "complete": len(done) == total and not failed,
        "oracle": planned_oracle or any(bool(r.info.get("oracle")) for r in done),
    }
    frames: list[pd.DataFrame] = []
    pooled = None
    if done:
        frames = [run.trial_predictions[r.trial] for r in done]
        pred = pd.concat(frames, ignore_index=True)
        sub = pred[pred["split"] == run.split]
        if len(sub):
            scores = pooled_scores(sub, len(names), names, split=run.split)
            row.update(scores, oracle=row["oracle"] or scores["oracle"])
            pooled = sub
        secs = [(r.info.get("timings") or {}).get("total") for r in done]
        row["train_seconds"] = float(np.nansum([s or 0.0 for s in secs]))
    return row, frames, pooled


def _mean_std(values: list[Any]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None and not pd.isna(v)]
    if not vals:
        return math.nan, math.nan
    # one seed has no spread to report: NaN ("–" in tables), not a reassuring 0.000
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan


def status_text(complete: bool, done: int, total: int, failed: int) -> str:
    """`complete`, or INCOMPLETE with the folds done (and failed)."""
    if complete:
        return STATUS_COMPLETE
    return f"INCOMPLETE (folds {done}/{total}" + (f", {failed} failed" if failed else "") + ")"


def _state(run: RunData, variant: str, complete_folds: bool) -> tuple[str, str | None]:
    """A search configuration's state as the search summary records it (STATES), and why."""
    rec = run.configs.get(variant) or {}
    state = rec.get("state")
    if state is None:  # not in the summary (yet): a search still running or interrupted
        return (STATUS_COMPLETE if complete_folds else "running"), None
    return STATES.get(state, str(state).lower()), rec.get("reason")


def _changes(info: dict[str, Any]) -> str:
    text = changes_text(info.get("overrides"))
    sampled = (info.get("config") or {}).get("overrides")
    return f"{text}; sampled {sampled}" if sampled else text


def variant_table(
    run: RunData, seeds: list[dict[str, Any]], pooled: Pooled | None = None
) -> pd.DataFrame:
    """Per variant: UF1/UAR/acc mean ± std over seeds (sample std; NaN for one seed), per-dataset
    parts, folds done/failed/total, status, labels (oracle, partial, subject-dependent) and the
    display name carrying them, params, GFLOPs, what the variant changes, paper numbers (only for
    the paper's own configuration: mer.experiment.paper), the UF1 difference to the reference
    variant (`delta_uf1`, see `delta_reference`; `report.reference` when set), and the
    uncertainty columns of mer.experiment.intervals (subject-bootstrap intervals, clip / subject
    / class counts, paired comparison with the reference). `pooled`: the rows `_pool` pooled
    (recomputed when not given).

    For a search each row is one configuration, with its own params/GFLOPs (search summary or
    its fold results) and its `state` as the search summary has it (complete / PRUNED / failed /
    running, with `reason`): only a configuration the search completed is `complete`; a pruned
    one's scores cover the folds the search counted before pruning it."""
    search = run.mode == "search"
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in seeds:
        by_variant.setdefault(r["variant"], []).append(r)
    rows = [variant_row(run, v, by_variant.get(v, [])) for v in run.variants]
    table = pd.DataFrame(rows)
    if search:
        table.attrs["uncounted"] = list(run.uncounted)
    settings = report_settings(run.config)
    # a search's rows are configurations ranked by their objective: no ablation reference
    ref = None if search else _reference(table, settings.reference)
    table["delta_uf1"] = math.nan
    if ref is not None:
        base = float(table.loc[table["variant"] == ref, "uf1_mean"].iloc[0])
        table["delta_uf1"] = table["uf1_mean"] - base
        # a difference is only meaningful between like and like: oracle rows get none
        table.loc[table["oracle"], "delta_uf1"] = math.nan
        table.attrs["delta_reference"] = ref
    if pooled is None:
        pooled = _pool(run)[2]
    data = {
        v: safe_clip_predictions(pooled.get(v, {}), v, len(run.classes_of(v)), run.split)
        for v in table["variant"]
    }
    names = {v: run.classes_of(v) for v in table["variant"]}
    add_uncertainty(table, data, names, settings, ref)
    if settings.reference is not None and ref != settings.reference and not search:
        table.attrs["reference_note"] = (
            f"report.reference {settings.reference!r} is an oracle row or has no scores: "
            "no paired comparisons"
        )
    return table


def variant_row(run: RunData, variant: str, rs: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant's row from its seed rows `rs` (`seed_row`), before the columns that depend on
    the other variants (reference, ΔUF1, intervals, comparisons: `variant_table`): labels and
    display name, folds, status, params/GFLOPs, changes, mean ± std over seeds, paper numbers.
    The sweep's per-variant log line and W&B state (mer.experiment.pooling) use it as it is."""
    search = run.mode == "search"
    info = run.variant_info(variant)
    stats = info.get("stats") or {}
    oracle = bool(info.get("oracle", False)) or any(r["oracle"] for r in rs)
    done = sum(r["folds_done"] for r in rs)
    failed = sum(r["folds_failed"] for r in rs)
    total = sum(r["folds_total"] for r in rs)
    complete = bool(rs) and all(r["complete"] for r in rs)
    tags = [str(t) for t in info.get("tags") or []]
    row: dict[str, Any] = {
        "variant": variant,
        "name": layout.display_name(variant, oracle, tags),
        "oracle": oracle,
        "partial": bool(info.get("partial", False)),
        "subject_dependent": bool(info.get("subject_dependent")),
        "subjects_tested": info.get("subjects_tested"),
        "subjects_total": info.get("subjects_total"),
        "tags": " ".join(tags),
        "seeds": len(rs),
        "seeds_scored": sum(1 for r in rs if "uf1" in r),
        "folds_done": done,
        "folds_failed": failed,
        "folds_total": total,
    }
    if search:
        state, reason = _state(run, variant, complete)
        complete = complete and state == STATUS_COMPLETE
        row["state"], row["reason"] = state, reason
    row["complete"] = complete
    row["status"] = status_text(complete, done, total, failed)
    row["params"] = stats.get("params")
    row["gflops"] = stats.get("gflops")
    row["changes"] = _changes(info)
    for key in list(METRICS) + sorted({k for r in rs for k in r if "/" in k}):
        row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([r.get(key) for r in rs])
    # plan.json names the paper configuration a variant is (None for a search, a partial or
    # subject-dependent run, a hold-out evaluation, synthetic data: mer.experiment.paper)
    paper = paper_by_name(None if search else info.get("paper"))
    row["paper_config"] = paper.name if paper is not None else None
    for m in METRICS:
        row[f"paper_{m}"] = paper.numbers.get(m, math.nan) if paper else math.nan
    return row


def _reference(table: pd.DataFrame, configured: str | None) -> str | None:
    """`report.reference` when it is a label-free row with scores; else `delta_reference`'s
    choice, unless a reference was configured (then none: its absence is reported)."""
    if configured is None:
        return delta_reference(table)
    row = table[table["variant"] == configured]
    ok = len(row) and not bool(row["oracle"].iloc[0]) and not pd.isna(row["uf1_mean"].iloc[0])
    return configured if ok else None


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
