"""What a search's results folder says about its configurations, beyond the trial files:
their Optuna state (OUT/search/summary.csv, or the searcher's cancel markers while it runs) and
which fold results the search did not count."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mer.experiment import layout
from mer.experiment.store import TrialRecord, read_csv

# Optuna's trial states as reports name them (the search summary's `state` column).
STATES = {
    "COMPLETE": "complete",
    "PRUNED": "PRUNED",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def _number(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _blank() -> dict[str, Any]:
    keys = ("state", "params", "gflops", "folds_done", "reason", "overrides", "source")
    return dict.fromkeys(keys)


def search_configs(run_dir: Path, trials: list[TrialRecord]) -> dict[str, dict[str, Any]]:
    """Per search configuration: `state` (Optuna's: COMPLETE / PRUNED / FAIL / RUNNING; None when
    nothing records it), `params`, `gflops`, `folds_done` (the folds the search counted), `reason`,
    `overrides` and `source`.

    From OUT/search/summary.csv (the search summary, written from the Optuna study) first; for a
    configuration it lacks (a search still running or interrupted): the state from the
    OUT/search/cancelled/ marker the searcher writes when it closes a configuration while folds
    still run, and params from the configuration's own fold results (result.json `params`, the
    model that trained). Never the base variant's plan.json stats: a sampled configuration
    (recurrent units, layers) is a different model.
    """
    configs: dict[str, dict[str, Any]] = {}
    search = Path(run_dir) / layout.SEARCH_DIR
    summary = search / layout.SEARCH_SUMMARY_CSV
    if summary.exists() and summary.stat().st_size:
        for r in read_csv(summary, "search summary").to_dict(orient="records"):
            if pd.isna(r.get("config_id")) or pd.isna(r.get("variant")):
                continue
            label = layout.search_label(str(r["variant"]), int(r["config_id"]))
            configs.setdefault(label, _blank()).update(
                state=_text(r.get("state")),
                params=_number(r.get("params"), int),
                gflops=_number(r.get("gflops"), float),
                folds_done=_number(r.get("folds_done"), int),
                reason=_text(r.get("reason")),
                overrides=_text(r.get("overrides")),
                source="summary",
            )
    cancelled = search / layout.CANCELLED_DIR
    for marker in sorted(cancelled.iterdir()) if cancelled.is_dir() else []:
        parsed = layout.parse_cancel_marker(marker.name)
        if parsed is None:
            continue
        rec = configs.setdefault(layout.search_label(*parsed), _blank())
        if rec["state"] is None:
            state, _, reason = marker.read_text().strip().partition(":")
            rec.update(state=state.strip() or None, reason=reason.strip() or None, source="marker")
    for t in trials:
        rec = configs.setdefault(t.variant, _blank())
        if rec["params"] is None:
            rec["params"] = _number(t.info.get("params"), int)
    return configs


def uncounted_trials(
    trials: list[TrialRecord], configs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Search fold trials whose results the search did not count.

    A fold that was stopped early (result.json `stopped`: its configuration's cancel marker
    appeared) ran after the configuration was pruned or failed; so did, for a configuration the
    summary counts `folds_done` folds of, any later-finished folds beyond that many (the searcher
    ignores results of a closed configuration). Their predictions came from no fold of the
    search's record, and a stopped fold's model is half-trained.
    """
    out: list[dict[str, Any]] = []
    by_config: dict[str, list[TrialRecord]] = {}
    for t in trials:
        if not t.done:
            continue
        if t.info.get("stopped"):
            why = "stopped early: its configuration was closed while it ran"
            out.append({"trial": t.trial, "variant": t.variant, "fold": t.fold, "why": why})
            continue
        by_config.setdefault(t.variant, []).append(t)
    for label, done in by_config.items():
        rec = configs.get(label, {})
        limit = rec.get("folds_done")
        if rec.get("state") not in ("PRUNED", "FAIL") or limit is None or len(done) <= limit:
            continue
        done = sorted(done, key=lambda t: (t.info.get("ended_at") or math.inf, t.trial))
        for t in done[limit:]:
            why = f"finished after its configuration was {STATES[rec['state']]}"
            out.append({"trial": t.trial, "variant": label, "fold": t.fold, "why": why})
    return out
