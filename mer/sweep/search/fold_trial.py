"""The contract between the searcher and a search fold trial: what a trial gets, what it reports.

A *fold trial* is one Tune trial = (variant, configuration, fold); the trainable that runs it
(mer.sweep.trial does) needs only this module, not the searcher.

Trial config (what `FoldFanoutSearcher.suggest` returns, merged by Tune into `param_space`)::

    {"mode": "search", "variant": str, "config_id": int, "fold": str, "fold_index": int,
     "seed": int, "overrides": {dotted key: value}, "label": "{variant}.c{config_id:04d}",
     "cancel_marker": str (a path)}

The trainable builds its config with `search_trial_config(cfg, trial_config)` (=
`with_overrides(variant_config(cfg, variant), overrides)`), runs that fold with that seed, and
polls `cancel_requested(trial_config)` (the marker file exists) in `FoldHooks.should_stop` to stop
early once the configuration is pruned or failed (mer.sweep.trial does; optional, as results of a
closed configuration are ignored anyway).
Results are filed under `label` (one name per configuration, so `trials/{label}/{seed}/
{fold_safe}/` and the prediction log's `variant` column keep configurations apart; a `config_id`
column instead is accepted too).

Final result of each fold trial (top-level keys of the last `tune.report`), either::

    val_true: list[int]   inner-validation labels of that fold, in a fixed order
    val_pred: list[int]   predictions for the same clips

or the runner's `predictions` table as a dict of columns (`split`, `true`, `pred`, ...; Tune
hands it to searchers flattened as `predictions/split` ...), of which only the rows with
split == "val" are read. Nothing else is read: the searcher copies the val
labels out of the result and drops the rest, so test rows and test fields never reach the
objective. A result without them (or an errored fold trial) fails the configuration (Optuna FAIL,
reason in user attr `fail_reason`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mer.config import ExperimentConfig, variant_config, with_overrides
from mer.experiment.layout import search_label  # noqa: F401 - re-exported by mer.sweep.search

RESULT_KEYS = ("val_true", "val_pred")
SKIPPED_KEY = "mer_skipped"  # = mer.sweep.trial.SKIPPED_KEY: a resumed trial already on disk


def search_trial_config(cfg: ExperimentConfig, trial_config: Mapping[str, Any]) -> ExperimentConfig:
    """The ExperimentConfig one search fold trial trains: variant, then the sampled overrides."""
    vcfg = variant_config(cfg, trial_config["variant"])
    overrides = trial_config.get("overrides") or {}
    return with_overrides(vcfg, dict(overrides)) if overrides else vcfg


def cancel_requested(trial_config: Mapping[str, Any]) -> bool:
    """True once the trial's configuration was pruned or failed (poll in FoldHooks.should_stop)."""
    marker = trial_config.get("cancel_marker")
    return bool(marker) and Path(marker).exists()


def val_labels(result: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """(val_true, val_pred) of a fold trial's final result; nothing else is looked at.

    Reads `val_true`/`val_pred`, or else the val rows (split == "val") of a `predictions` dict of
    columns (nested, or flattened to `predictions/split` ... as Tune passes results to searchers).
    ValueError when neither is there or they do not match.
    """
    if "val_true" in result or "val_pred" in result:
        y_true = _labels(result.get("val_true"), "val_true")
        y_pred = _labels(result.get("val_pred"), "val_pred")
    elif isinstance(result.get("predictions"), Mapping) or "predictions/split" in result:
        # Tune hands searchers flattened results: {"predictions/split": [...], ...}
        table = result.get("predictions") or {
            k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("predictions/")
        }
        missing = [k for k in ("split", "true", "pred") if k not in table]
        if missing:
            raise ValueError(f"result 'predictions' lacks column(s) {', '.join(missing)}")
        rows = [i for i, s in enumerate(table["split"]) if s == "val"]
        y_true = _labels([table["true"][i] for i in rows], "predictions.true (val rows)")
        y_pred = _labels([table["pred"][i] for i in rows], "predictions.pred (val rows)")
    else:
        raise ValueError("result has neither 'val_true'/'val_pred' nor a 'predictions' table")
    if len(y_true) != len(y_pred):
        raise ValueError(f"val_true has {len(y_true)} labels, val_pred {len(y_pred)}")
    return y_true, y_pred


def _labels(value: Any, key: str) -> list[int]:
    if value is None:
        raise ValueError(f"result has no '{key}'")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"result '{key}' must be a flat list of class indices")
    integral = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    )
    if arr.size and not integral:
        raise ValueError(f"result '{key}' must hold integer class indices")
    return [int(v) for v in arr.tolist()]
