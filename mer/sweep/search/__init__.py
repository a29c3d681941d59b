"""Search mode: an Optuna study behind a Ray Tune searcher that fans each configuration out by fold.

Why a custom searcher: the objective of a configuration is a *pooled* inner-validation score over
all its folds (PROTOCOL.md §3-4), so one Optuna trial must become several Tune trials (one per fold)
and Optuna must hear exactly one value, after the last fold, never computed from a test fold.

Terms: a *configuration* is one Optuna trial (`config_id` = its number in the variant's study);
a *fold trial* is one Tune trial = (variant, configuration, fold). `search.trials` counts
configurations per variant (every asked configuration counts, pruned and failed ones too).

Where the parts are (each module's docstring says more; every name below is re-exported here)
---------------------------------------------------------------------------------------------
- this module: `run_search`, the mode's entry point;
- `fold_trial`: the contract with a fold trial: the trial config it gets, the result it reports
  (`search_trial_config`, `search_label`, `cancel_requested`, `val_labels`);
- `storage`: where the studies live, their names and directions (`storage_url`, `open_storage`,
  `study_name`, `directions`);
- `searcher`: `FoldFanoutSearcher` (asking, fan-out, pooling, pruning; checkpoint and resume);
- `holdout`: the evaluation on held-out subjects, the only test estimate a search reports
  (`holdout_raw`, `holdout_dir`, `evaluate_holdout`, ...);
- `summary`: OUT/search/{best.json, summary.csv, summary.md} and the console summary
  (`write_search_summary`, `format_search_summary`).

Contract with the session (mer.sweep.session / trial)
----------------------------------------------------
`run_search(cfg, opts)` is the search-mode counterpart of `mer.sweep.ablation.run_ablation`: it
opens the sweep's Session (data, plan, Ray, results folder), builds the searcher from the plan's
folds for `cfg.seeds[0]`, calls `Session.run(search_alg=searcher, num_samples=-1)` (with
`--resume`, Session.run restores the Tune experiment and Tune restores the searcher), writes the
search summary and, once every variant's search is finished, the hold-out evaluation's config,
then runs that evaluation (`evaluate_holdout`; with `--resume` it continues an interrupted one, and
a finished search re-runs no search trial) and rewrites the summary with its metrics.
`mer sweep` (mer.cli.sweep) only has to dispatch to it when the config has a `search` section.
What it does, for anyone wiring Tune differently (driver)::

    searcher = FoldFanoutSearcher(cfg, folds, out_dir)     # folds: names in protocol order, from
                                                           # the seed-cfg.seeds[0] plan, or a
                                                           # {variant: [names]} mapping
    tune.Tuner(trainable, param_space={...constants...},
               tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                           metric=None, mode=None),  # searcher stops with FINISHED
               run_config=tune.RunConfig(...))
    ...fit()...
    write_search_summary(cfg, out_dir)                     # after fit: OUT/search/best.json
                                                           # (+ holdout.yaml, then run it)

`num_samples=-1`: the searcher alone decides how many fold trials there are and returns
`Searcher.FINISHED`. `max_concurrent_trials` may be set (Tune wraps a ConcurrencyLimiter; fine).
Do not pass `metric`/`mode` meant for the searcher; the objective is not a per-trial metric.
Resume: `tune.Tuner.restore(path, trainable, resume_unfinished=True)` (Tune's default) — Tune
unpickles the searcher and calls `restore()`; fold trials that were running are re-run by Tune and
the searcher waits for them; everything else comes from the Optuna storage (see "Resume" in
mer.sweep.search.searcher).
With `resume_errored=True` Tune also re-runs fold trials that had errored; their configuration
already failed, so those results are ignored (wasted compute, no effect on the study).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.errors import ConfigError
from mer.sweep.search.fold_trial import (
    RESULT_KEYS,
    SKIPPED_KEY,
    cancel_requested,
    search_label,
    search_trial_config,
    val_labels,
)
from mer.sweep.search.holdout import (
    HOLDOUT_CONFIG,
    HOLDOUT_NOTE,
    NO_HOLDOUT_NOTE,
    evaluate_holdout,
    holdout_dir,
    holdout_name,
    holdout_protocol,
    holdout_raw,
)

# Tune pickles the searcher into tuner.pkl by class path; checkpoints from before the split
# name mer.sweep.search.FoldFanoutSearcher (and _Open), so both must stay reachable here.
from mer.sweep.search.searcher import STATE_VERSION, FoldFanoutSearcher
from mer.sweep.search.searcher import _Open as _Open
from mer.sweep.search.storage import (
    DEFAULT_STORAGE,
    directions,
    open_storage,
    storage_url,
    study_name,
)
from mer.sweep.search.summary import _search_scope as _search_scope  # tests import it from here
from mer.sweep.search.summary import format_search_summary, write_search_summary
from mer.sweep.session import open_session
from mer.sweep.startup import Startup
from mer.sweep.workspace import save_after_sweep

__all__ = [
    "DEFAULT_STORAGE",
    "HOLDOUT_CONFIG",
    "HOLDOUT_NOTE",
    "NO_HOLDOUT_NOTE",
    "RESULT_KEYS",
    "SKIPPED_KEY",
    "STATE_VERSION",
    "FoldFanoutSearcher",
    "cancel_requested",
    "directions",
    "evaluate_holdout",
    "format_search_summary",
    "holdout_dir",
    "holdout_name",
    "holdout_protocol",
    "holdout_raw",
    "open_storage",
    "run_search",
    "search_label",
    "search_trial_config",
    "storage_url",
    "study_name",
    "val_labels",
    "write_search_summary",
]

log = logging.getLogger(__name__)


def run_search(cfg: ExperimentConfig, opts: Any, *, startup: Startup | None = None) -> int:
    """Search mode end to end on the runner's Session (opts: mer.sweep.options.RunOptions), then
    the hold-out evaluation (`evaluate_holdout`) when the search is finished.

    Exit status 0 when every variant's search used its budget, has a completed configuration and
    (if run) its hold-out evaluation is complete; 1 otherwise (continue with --resume).
    """
    if cfg.search is None:
        raise ConfigError("search: this sweep has no `search` section (search mode needs one)")
    session = open_session(cfg, opts, startup=startup)
    held_status = 0
    try:
        seed = int(cfg.seeds[0])
        plan = session.plan
        folds = {v: [f.name for f in vp.folds[seed]] for v, vp in plan.variants.items()}
        held = {v: list(vp.holdout) for v, vp in plan.variants.items()}
        searcher = FoldFanoutSearcher(cfg, folds, session.out, variants=list(folds))
        log.info(
            "search: %d configuration(s) per variant x %s fold(s), %d open at a time; "
            "%d subject(s) held out; study storage %s",
            cfg.search.trials,
            "/".join(str(len(f)) for f in folds.values()),
            cfg.search.concurrent_configs,
            max((len(s) for s in held.values()), default=0),
            searcher.storage,
        )
        try:
            session.run(search_alg=searcher, num_samples=-1)
        finally:
            # Not Session.finish(): its ablation summary would list every variant as unrun.
            session.tracker.close()
        if session.wandb_mode == "online":
            save_after_sweep(cfg, session.out)
        doc = write_search_summary(cfg, session.out, variants=list(folds), holdout=held)
        config = doc["holdout"].get("config")
        if config and cfg.search.evaluate_holdout:
            session.data_refs.clear()  # the evaluation puts its own copy in the object store
            held_status = evaluate_holdout(cfg, opts, Path(config))
            doc = write_search_summary(cfg, session.out, variants=list(folds), holdout=held)
    finally:
        session.close()  # the Ray it started, the results folder's lock
    print()
    print(format_search_summary(doc))
    print(
        f"\nresults: {session.out / 'search'} (best.json, summary.md, summary.csv, "
        f"{DEFAULT_STORAGE if not cfg.search.storage else searcher.storage})"
    )
    unfinished = [v for v, e in doc["variants"].items() if not e["finished"]]
    if unfinished:
        print(
            f"INCOMPLETE: the search of {', '.join(unfinished)} stopped before its "
            f"{cfg.search.trials} configuration(s) were done (the summary above is partial); "
            "continue it with --resume"
        )
        return 1
    if held_status:
        print("INCOMPLETE: the hold-out evaluation has failed or missing folds; --resume retries")
        return 1
    return 0 if all(e.get("best") for e in doc["variants"].values()) else 1
