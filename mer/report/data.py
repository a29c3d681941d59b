"""Read a sweep's output folder (finished or still running) into one object for reporting."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import read_yaml
from mer.errors import DataError


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

    @property
    def variants(self) -> list[str]:
        """Ablation variants in plan order; for a search, each evaluated configuration
        (`{variant}.c{id}`) is a row of its own."""
        found = sorted(self.predictions["variant"].unique()) if len(self.predictions) else []
        if self.mode == "search":
            return found
        return list(self.plan.get("variants", {})) or found

    def variant_info(self, variant: str) -> dict[str, Any]:
        planned = self.plan.get("variants", {})
        if variant not in planned and self.mode == "search":
            variant = variant.rsplit(".c", 1)[0]  # a search configuration of that variant
        return planned.get(variant, {})

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
    trials_dir = run_dir / "trials"
    pred_frames, hist_frames, status = [], [], {}
    for result_path in sorted(trials_dir.glob("*/*/*/result.json")) if trials_dir.exists() else []:
        trial_dir = result_path.parent
        result = _read_json(result_path)
        variant, seed, fold_safe = trial_dir.relative_to(trials_dir).parts
        fold = result.get("fold", fold_safe.replace("__", "/"))
        status[result.get("trial", f"{variant}/{fold}/s{seed}")] = result.get("status", "finished")
        pred_path = trial_dir / "predictions.csv"
        if pred_path.exists():
            frame = pd.read_csv(pred_path)
            frame["variant"], frame["seed"] = variant, int(seed)
            pred_frames.append(frame)
        hist_path = trial_dir / "history.csv"
        if hist_path.exists():
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
        mode=str(plan.get("mode", "ablation")),
        config=config or {},
        plan=plan,
        predictions=predictions,
        histories=histories,
        class_names=class_names,
        trial_status=status,
        search=search,
    )


def _class_names(plan: dict[str, Any], config: dict[str, Any]) -> list[str]:
    names = plan.get("class_names") or {}
    if isinstance(names, dict) and names:
        return list(next(iter(names.values())))
    if isinstance(names, list) and names:
        return list(names)
    k = int(config.get("model", {}).get("num_classes", 3))
    return [str(i) for i in range(k)]
