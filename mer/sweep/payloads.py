"""What the W&B runs hold, as plain data: a trial run's config, curve rows and summary
(`trial_config`, `history_rows`, `trial_summary`: the same whether the trial logs itself live or
the driver logs it afterwards), a variant's values (`variant_summary`), the display rows
summary.md shows (`display_rows`), the sweep run's tables and values. Pure functions of the
trial payload or the aggregate table, so tests compare them with summary.csv / summary.md without
W&B."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mer.config import ExperimentConfig, flatten
from mer.experiment import formatting as fmt
from mer.experiment.plan import TrialSpec
from mer.util.jsonio import to_plain

# in a trial payload (and result.json): the wall-clock time each epoch ended, aligned with
# `history`, so a run logged after the trial still has the epochs' real timestamps
EPOCH_TIMES_KEY = "epoch_ended_at"
# in a trial payload (and result.json): the trial logged its own W&B run while it trained
# (mer.sweep.live): {"run_id": ..., "mode": ...}; the driver then logs no run for it
LIVE_KEY = "wandb_live"


def trial_config(cfg: ExperimentConfig, spec: TrialSpec, oracle: bool, sweep: str) -> dict:
    """A trial run's W&B config: the flattened experiment config plus who the trial is."""
    config = flatten(cfg)
    config.update(variant=spec.variant, fold=spec.fold, seed=spec.seed, oracle=oracle, sweep=sweep)
    return config


def history_row(rec: dict[str, Any], ended_at: float | None = None) -> tuple[dict, int]:
    """One epoch record as a W&B history row and its step (the epoch): numbers only, and the
    epoch's real end time as `_timestamp` when it is known."""
    row = {k: v for k, v in rec.items() if _is_number(v) and k != "epoch"}
    if ended_at is not None:
        row["_timestamp"] = float(ended_at)
    return row, int(rec.get("epoch", 0))


def history_rows(
    history: Sequence[dict[str, Any]], ended_at: Sequence[float] | None = None
) -> list[tuple[dict, int]]:
    """`history_row` of every epoch; `ended_at` (EPOCH_TIMES_KEY) is used when it covers them."""
    times = list(ended_at or [])
    if len(times) != len(history):
        times = [None] * len(history)
    return [history_row(rec, t) for rec, t in zip(history, times)]


def trial_summary(
    payload: dict[str, Any], cfg: ExperimentConfig | None = None, searched: Sequence[str] = ()
) -> dict[str, Any]:
    """A trial run's summary values: test and validation scores, the selected epoch, size,
    duration and the epoch it resumed from; for a search trial also its configuration's value
    of each searched key as `search/{key}` (the parallel-coordinates axes of mer.sweep.workspace:
    W&B reads dots in config keys as nesting, so the flat config keys cannot serve). Missing
    values are left out."""
    summary = {f"test/{k}": v for k, v in (payload.get("test_scores") or {}).items()}
    if cfg is not None and searched:
        flat = flatten(cfg)
        summary.update({f"search/{k}": flat.get(k) for k in searched})
    summary.update({f"val/{k}": v for k, v in (payload.get("val_scores") or {}).items()})
    summary.update(
        selected_epoch=payload.get("selected_epoch"),
        params=payload.get("params"),
        seconds=(payload.get("timings") or {}).get("total"),
        resumed_from=payload.get("resumed_from"),
    )
    return {k: v for k, v in summary.items() if v is not None}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def variant_summary(
    row: dict[str, Any], seed_rows: list[dict], display_row: dict[str, str] | None = None
) -> dict[str, Any]:
    """A variant summary run's values: its aggregate row at full precision (as summary.csv has
    it: `pooled/{metric}`, `_std`, `_low`, `_high`, `_se` (its interval), per-dataset parts, per
    seed; `compare/*` its paired comparison with the reference; `counts/*` clips, subjects,
    classes; its labels) and, given its row of the display table, the same text summary.md and
    the report show (`table/{column}`). Missing values are left out."""
    summary: dict[str, Any] = {
        **{f"pooled/{m}": row.get(f"{m}_mean") for m in fmt.SCORE_COLUMNS},
        **{f"pooled/{m}_std": row.get(f"{m}_std") for m in fmt.SCORE_COLUMNS},
        **{
            f"pooled/{m}_{part}": row.get(f"{m}_{part}")
            for m in fmt.SCORE_COLUMNS
            for part in ("low", "high", "se")
        },
        **{k: row.get(k) for k in ("folds_done", "folds_failed", "folds_total", "complete")},
        **{f"ci/{k}": row.get(k) for k in ("ci_level", "ci_method", "n_boot", "boot_seed")},
        **{f"counts/{k[2:]}": row.get(k) for k in ("n_clips", "n_subjects", "n_classes")},
        "status": row.get("status"),
        "oracle": bool(row.get("oracle")),
        "partial": bool(row.get("partial")),
        "subject_dependent": bool(row.get("subject_dependent")),
    }
    if not fmt.is_missing(row.get("uf1_diff")):
        summary["compare/reference"] = row.get("reference")
        summary["compare/n_clips"] = row.get("n_compared")
        for m in fmt.SCORE_COLUMNS:
            for part in ("diff", "diff_low", "diff_high", "diff_se", "p", "p_holm"):
                summary[f"compare/{m}_{part}"] = row.get(f"{m}_{part}")
            summary[f"compare/{m}_detectable"] = fmt.is_flag(row.get(f"{m}_detectable"))
    for key, val in row.items():
        if "/" in key and key.endswith("_mean"):  # per-dataset parts
            summary[f"pooled/{key[: -len('_mean')]}"] = val
    for r in seed_rows:
        for m in fmt.SCORE_COLUMNS:
            if m in r:
                summary[f"pooled/s{r['seed']}/{m}"] = r[m]
    for column, text in (display_row or {}).items():
        summary[f"table/{column}"] = text
    return {k: v for k, v in to_plain(summary).items() if v is not None}


def display_rows(summary: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Each variant's row of the display table (the text summary.md shows), by variant."""
    shown = fmt.display_table(summary)
    return {str(v): shown.iloc[i].to_dict() for i, v in enumerate(summary["variant"])}


def sweep_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The sweep summary run's tables: `variants`, the aggregate rows at full precision (as
    summary.csv), and `variants_display`, the same rows as summary.md and the report show them."""
    table = summary.drop(columns=[c for c in ("changes",) if c in summary]).copy()
    table = table.astype(object).where(pd.notna(table), None)
    return {"variants": table, "variants_display": fmt.display_table(summary)}


SWEEP_KEYS = ("uf1_low", "uf1_high", "uf1_diff", "uf1_diff_low", "uf1_diff_high", "uf1_p_holm")


def sweep_summary(summary: pd.DataFrame) -> dict[str, Any]:
    """`{display name}/uf1` per variant with a score, its interval (`uf1_low`, `uf1_high`) and
    its paired UF1 comparison with the reference (`uf1_diff`, `_low`, `_high`, `uf1_p_holm`,
    `uf1_detectable`), as summary.csv has them."""
    values: dict[str, Any] = {}
    for _, r in summary.iterrows():
        values[f"{r['name']}/uf1"] = to_plain(r.get("uf1_mean"))
        values.update({f"{r['name']}/{k}": to_plain(r.get(k)) for k in SWEEP_KEYS})
        if not fmt.is_missing(r.get("uf1_diff")):
            values[f"{r['name']}/uf1_detectable"] = fmt.is_flag(r.get("uf1_detectable"))
    return {k: v for k, v in values.items() if v is not None}
