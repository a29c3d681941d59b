"""A results folder (finished or still running) read into one object: what the summary, the
report and W&B are rendered from.

`load_run(OUT)` reads plan.json and config.yaml from the folder; the sweep driver passes its
in-memory plan and config instead (`load_run(OUT, plan=..., config=...)`), so a summary written
mid-sweep and `mer report` afterwards read the same trial files through the same code
(mer.experiment.store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import read_yaml
from mer.errors import DataError
from mer.experiment import layout
from mer.experiment.searchlog import search_configs, uncounted_trials
from mer.experiment.store import ResultsStore, TrialRecord
from mer.util.jsonio import read_json

PREDICTION_COLUMNS = [
    "sample_id", "dataset", "subject", "fold", "split", "true", "pred", "variant", "seed",
]  # fmt: skip
_SORT = ("variant", "seed", "fold", "split", "sample_id")


@dataclass
class RunData:
    run_dir: Path
    name: str
    mode: str  # "ablation" or "search"
    config: dict[str, Any]
    plan: dict[str, Any]  # plan.json's content
    trials: list[TrialRecord]  # every trial folder with a result.json
    predictions: pd.DataFrame  # rows of every counted finished trial (+ variant, seed), sorted
    histories: pd.DataFrame  # per-epoch rows of the same trials (+ variant, seed, fold)
    class_names: list[str]
    search: dict[str, Any] | None = None  # OUT/search/best.json
    # search: per configuration (`{variant}.c{id:04d}`) what the search recorded about it, see
    # mer.experiment.searchlog.search_configs; empty for an ablation
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # search fold trials whose results the search did not count (finished or stopped after their
    # configuration was pruned or failed): left out of `predictions` and `histories`
    uncounted: list[dict[str, Any]] = field(default_factory=list)
    # trial id -> its prediction rows (counted finished trials only)
    trial_predictions: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def split(self) -> str:
        """The split a run's tables and per-configuration views show: a search's are its
        validation clips (the search folds' test subjects also validated other folds, so their
        test scores estimate nothing; a search's clean test numbers are its hold-out
        evaluation's own run)."""
        return "val" if self.mode == "search" else "test"

    @property
    def trial_status(self) -> dict[str, str]:
        return {t.trial: t.status for t in self.trials}

    @property
    def variants(self) -> list[str]:
        """Ablation variants in plan order; for a search, each evaluated configuration
        (`{variant}.c{id}`) is a row of its own."""
        found = sorted(self.predictions["variant"].unique()) if len(self.predictions) else []
        if self.mode == "search":
            # configurations without predictions (failed, or still queued) are rows too
            return sorted(set(found) | set(self.configs))
        return list(self.plan.get("variants", {})) or found

    @property
    def seeds(self) -> list[int]:
        seeds = self.plan.get("seeds") or sorted(self.predictions["seed"].unique().tolist())
        return [int(s) for s in seeds]

    def variant_info(self, variant: str) -> dict[str, Any]:
        """The plan's entry of an ablation variant. For a search configuration: its variant's
        entry (folds, data key, oracle flag) with the configuration's own `stats` (params and
        GFLOPs of its sampled model; None where no record of it has them) and `config`."""
        planned = self.plan.get("variants", {})
        if variant in planned or self.mode != "search":
            return planned.get(variant, {})
        base = planned.get(layout.label_variant(variant), {})  # a search configuration
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


def load_run(
    run_dir: str | Path,
    *,
    plan: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> RunData:
    """Config, plan, trial records, prediction logs and training histories of a results folder.

    `plan`/`config`: the run's plan (SweepPlan.to_json()) and config (as a dict) when the
    caller has them; otherwise plan.json and config.yaml are read from the folder."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such sweep output folder")
    if plan is None:
        plan_path = run_dir / layout.PLAN_FILE
        if not plan_path.exists():
            raise DataError(
                f"{run_dir}: no plan.json; is this a sweep output folder (run_sweep.py)?"
            )
        plan = read_json(plan_path, what="the sweep's plan")
    if config is None:
        config_path = run_dir / layout.CONFIG_FILE
        config = read_yaml(config_path.read_text()) if config_path.exists() else {}
    mode = str(plan.get("mode", "ablation"))
    trials = list(ResultsStore(run_dir).records().values())
    configs, uncounted = {}, []
    if mode == "search":
        configs = search_configs(run_dir, trials)
        uncounted = uncounted_trials(trials, configs)
    skip = {u["trial"] for u in uncounted}
    frames: dict[str, pd.DataFrame] = {}
    hist_frames = []
    for t in trials:
        if not t.done or t.trial in skip:
            continue
        frame = t.predictions()
        frame["variant"], frame["seed"] = t.variant, t.seed
        frames[t.trial] = frame
        hist = t.history()
        if len(hist):
            hist["variant"], hist["seed"], hist["fold"] = t.variant, t.seed, t.fold
            hist_frames.append(hist)
    return RunData(
        run_dir=run_dir,
        name=str(plan.get("name", run_dir.name)),
        mode=mode,
        config=config or {},
        plan=plan,
        trials=trials,
        predictions=concat_predictions(list(frames.values())),
        histories=pd.concat(hist_frames, ignore_index=True) if hist_frames else pd.DataFrame(),
        class_names=_class_names(plan, config or {}),
        search=_search_doc(run_dir),
        configs=configs,
        uncounted=uncounted,
        trial_predictions=frames,
    )


def empty_run(run_dir: str | Path, plan: dict[str, Any], config: dict[str, Any]) -> RunData:
    """A RunData of a results folder with no trial read yet: what a running sweep's per-trial
    pooling (mer.experiment.pooling) fills one settled trial at a time."""
    return RunData(
        run_dir=Path(run_dir),
        name=str(plan.get("name", Path(run_dir).name)),
        mode=str(plan.get("mode", "ablation")),
        config=config or {},
        plan=plan,
        trials=[],
        predictions=concat_predictions([]),
        histories=pd.DataFrame(),
        class_names=_class_names(plan, config or {}),
    )


def concat_predictions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Prediction rows of several trials in one table, in a stable order."""
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    pred = pd.concat(frames, ignore_index=True)
    order = [c for c in _SORT if c in pred]
    return pred.sort_values(order, kind="stable").reset_index(drop=True)


def _search_doc(run_dir: Path) -> dict[str, Any] | None:
    for name in (layout.SEARCH_BEST, layout.SEARCH_LEGACY):
        path = run_dir / layout.SEARCH_DIR / name
        if path.exists():
            return read_json(path, what="the search summary")
    return None


def _class_names(plan: dict[str, Any], config: dict[str, Any]) -> list[str]:
    names = plan.get("class_names") or {}
    if isinstance(names, dict) and names:
        return list(next(iter(names.values())))
    if isinstance(names, list) and names:
        return list(names)
    k = int(config.get("model", {}).get("num_classes", 3))
    return [str(i) for i in range(k)]
