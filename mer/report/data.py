"""Read a sweep's output folder (finished or still running) into one object for reporting."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import read_yaml
from mer.errors import DataError
from mer.sweep.plan import search_label


@dataclass
class RunData:
    run_dir: Path
    name: str
    mode: str  # "ablation" or "search"
    config: dict[str, Any]
    plan: dict[str, Any]
    predictions: pd.DataFrame  # every trial's prediction rows (+ variant, seed)
    histories: pd.DataFrame  # per-epoch rows of every trial (+ variant, seed, fold)
    class_names: list[str]
    trial_status: dict[str, str] = field(default_factory=dict)  # trial id -> finished/failed/...
    search: dict[str, Any] | None = None
    # search: per configuration (`{variant}.c{id:04d}`) what the search recorded about it, see
    # `search_configs`; empty for an ablation
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # search fold trials whose results the search did not count (finished or stopped after their
    # configuration was pruned or failed): left out of `predictions` and `histories`
    uncounted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def variants(self) -> list[str]:
        """Ablation variants in plan order; for a search, each evaluated configuration
        (`{variant}.c{id}`) is a row of its own."""
        found = sorted(self.predictions["variant"].unique()) if len(self.predictions) else []
        if self.mode == "search":
            # configurations without predictions (failed, or still queued) are rows too
            return sorted(set(found) | set(self.configs))
        return list(self.plan.get("variants", {})) or found

    def variant_info(self, variant: str) -> dict[str, Any]:
        """The plan's entry of an ablation variant. For a search configuration: its variant's
        entry (folds, data key, oracle flag) with the configuration's own `stats` (params and
        GFLOPs of its sampled model; None where no record of it has them) and `config`."""
        planned = self.plan.get("variants", {})
        if variant in planned or self.mode != "search":
            return planned.get(variant, {})
        base = planned.get(variant.rsplit(".c", 1)[0], {})  # a search configuration
        rec = self.configs.get(variant, {})
        stats = {"params": rec.get("params"), "gflops": rec.get("gflops")}
        return {**base, "stats": stats, "config": rec}

    def classes_of(self, variant: str) -> list[str]:
        names = self.plan.get("class_names")
        key = self.variant_info(variant).get("data_key")
        if isinstance(names, dict) and key in names:
            return list(names[key])
        return self.class_names

    def expected_folds(self, variant: str, seed: int) -> list[str]:
        folds = self.variant_info(variant).get("folds", {}).get(str(seed), [])
        return [f["name"] for f in folds]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def load_run(run_dir: str | Path) -> RunData:
    """Load config, plan, prediction logs and training histories of a sweep's output folder."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such sweep output folder")
    plan_path = run_dir / "plan.json"
    if not plan_path.exists():
        raise DataError(f"{run_dir}: no plan.json; is this a sweep output folder (run_sweep.py)?")
    plan = _read_json(plan_path)
    config = (
        read_yaml((run_dir / "config.yaml").read_text())
        if (run_dir / "config.yaml").exists()
        else {}
    )
    mode = str(plan.get("mode", "ablation"))
    trials_dir = run_dir / "trials"
    trials, status = [], {}
    for result_path in sorted(trials_dir.glob("*/*/*/result.json")) if trials_dir.exists() else []:
        trial_dir = result_path.parent
        result = _read_json(result_path)
        variant, seed, fold_safe = trial_dir.relative_to(trials_dir).parts
        fold = result.get("fold", fold_safe.replace("__", "/"))
        trial_id = result.get("trial", f"{variant}/{fold}/s{seed}")
        status[trial_id] = result.get("status", "finished")
        trials.append(
            {
                "id": trial_id,
                "variant": variant,
                "seed": int(seed),
                "fold": fold,
                "dir": trial_dir,
                "result": result,
            }
        )
    configs, uncounted = {}, []
    if mode == "search":
        configs = search_configs(run_dir, trials)
        uncounted = uncounted_trials(trials, configs)
    skip = {u["trial"] for u in uncounted}
    pred_frames, hist_frames = [], []
    for t in trials:
        if t["id"] in skip:
            continue
        trial_dir, variant, seed, fold = t["dir"], t["variant"], t["seed"], t["fold"]
        pred_path = trial_dir / "predictions.csv"
        if pred_path.exists():
            frame = pd.read_csv(pred_path)
            frame["variant"], frame["seed"] = variant, int(seed)
            pred_frames.append(frame)
        hist_path = trial_dir / "history.csv"
        if hist_path.exists() and hist_path.read_text().strip():  # no epochs: an empty file
            hist = pd.read_csv(hist_path)
            hist["variant"], hist["seed"], hist["fold"] = variant, int(seed), fold
            hist_frames.append(hist)
    predictions = (
        pd.concat(pred_frames, ignore_index=True)
        if pred_frames
        else pd.DataFrame(
            columns=[
                "sample_id",
                "dataset",
                "subject",
                "fold",
                "split",
                "true",
                "pred",
                "variant",
                "seed",
            ]
        )
    )
    histories = pd.concat(hist_frames, ignore_index=True) if hist_frames else pd.DataFrame()
    class_names = _class_names(plan, config)
    search = None
    for name in ("best.json", "search.json"):
        if (run_dir / "search" / name).exists():
            search = _read_json(run_dir / "search" / name)
            break
    return RunData(
        run_dir=run_dir,
        name=str(plan.get("name", run_dir.name)),
        mode=mode,
        config=config or {},
        plan=plan,
        predictions=predictions,
        histories=histories,
        class_names=class_names,
        trial_status=status,
        search=search,
        configs=configs,
        uncounted=uncounted,
    )


# Optuna's trial states as the report names them (the search summary's `state` column).
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


def search_configs(run_dir: Path, trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
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

    def blank() -> dict[str, Any]:
        return {
            "state": None,
            "params": None,
            "gflops": None,
            "folds_done": None,
            "reason": None,
            "overrides": None,
            "source": None,
        }

    summary = run_dir / "search" / "summary.csv"
    if summary.exists() and summary.stat().st_size:
        try:
            table = pd.read_csv(summary)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{summary}: not a readable CSV ({exc})") from None
        for r in table.to_dict(orient="records"):
            if pd.isna(r.get("config_id")) or pd.isna(r.get("variant")):
                continue
            label = search_label(str(r["variant"]), int(r["config_id"]))
            rec = configs.setdefault(label, blank())
            rec.update(
                state=None if pd.isna(r.get("state")) else str(r["state"]),
                params=_number(r.get("params"), int),
                gflops=_number(r.get("gflops"), float),
                folds_done=_number(r.get("folds_done"), int),
                reason=None if pd.isna(r.get("reason")) else str(r["reason"]),
                overrides=None if pd.isna(r.get("overrides")) else str(r["overrides"]),
                source="summary",
            )
    cancelled = run_dir / "search" / "cancelled"
    for marker in sorted(cancelled.iterdir()) if cancelled.is_dir() else []:
        variant, sep, number = marker.name.rpartition("__c")
        if not sep or not number.isdigit():
            continue
        rec = configs.setdefault(search_label(variant, int(number)), blank())
        if rec["state"] is None:
            state, _, reason = marker.read_text().strip().partition(":")
            rec.update(state=state.strip() or None, reason=reason.strip() or None, source="marker")
    for t in trials:
        rec = configs.setdefault(t["variant"], blank())
        if rec["params"] is None:
            rec["params"] = _number(t["result"].get("params"), int)
    return configs


def uncounted_trials(
    trials: list[dict[str, Any]], configs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Search fold trials whose results the search did not count.

    A fold that was stopped early (result.json `stopped`: its configuration's cancel marker
    appeared) ran after the configuration was pruned or failed; so did, for a configuration the
    summary counts `folds_done` folds of, any later-finished folds beyond that many (the searcher
    ignores results of a closed configuration). Their predictions came from no fold of the
    search's record, and a stopped fold's model is half-trained.
    """
    out: list[dict[str, Any]] = []
    by_config: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        if t["result"].get("status") in ("failed", "error"):
            continue
        if t["result"].get("stopped"):
            why = "stopped early: its configuration was closed while it ran"
            out.append({"trial": t["id"], "variant": t["variant"], "fold": t["fold"], "why": why})
            continue
        by_config.setdefault(t["variant"], []).append(t)
    for label, done in by_config.items():
        rec = configs.get(label, {})
        limit = rec.get("folds_done")
        if rec.get("state") not in ("PRUNED", "FAIL") or limit is None or len(done) <= limit:
            continue
        done = sorted(done, key=lambda t: (t["result"].get("ended_at") or math.inf, t["id"]))
        for t in done[limit:]:
            why = f"finished after its configuration was {STATES[rec['state']]}"
            out.append({"trial": t["id"], "variant": label, "fold": t["fold"], "why": why})
    return out


def _class_names(plan: dict[str, Any], config: dict[str, Any]) -> list[str]:
    names = plan.get("class_names") or {}
    if isinstance(names, dict) and names:
        return list(next(iter(names.values())))
    if isinstance(names, list) and names:
        return list(names)
    k = int(config.get("model", {}).get("num_classes", 3))
    return [str(i) for i in range(k)]
