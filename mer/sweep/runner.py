"""Old home of the sweep driver, now split by job; kept as the stable import path.

Tune pickles objects by module path into a sweep's experiment state (tuner.pkl,
experiment_state*.json): results folders written before the split name `SweepCallback`,
`trial_name` and `trial_dirname` HERE, and `--resume` must unpickle them into the very objects
the current code registers (tests/test_legacy_results.py checks it). Callers and notes written
against `mer.sweep.runner` keep working through the other names.

Where things live now: mer.sweep.cluster (connect, address checks, autoscaler ceiling),
mer.sweep.resources (per-trial resources and concurrency, pure), mer.sweep.outdir (results
folder lifecycle, storage record, experiment naming), mer.sweep.options (RunOptions),
mer.sweep.session (Session, its Tune callback, open_session), mer.sweep.ablation (the grid).
"""

from mer.sweep.ablation import ended_trials, run_ablation
from mer.sweep.cluster import autoscaler_ceiling, check_reachable, connect
from mer.sweep.options import RunOptions
from mer.sweep.outdir import (
    EXPERIMENT,
    experiment_for,
    output_dir,
    shared_experiment_name,
    storage_key,
)
from mer.sweep.resources import capacity, check_devices, max_concurrent, trial_resources
from mer.sweep.session import (
    Session,
    SweepCallback,
    open_session,
    prepare_datasets,
    trial_dirname,
    trial_name,
)

__all__ = [
    "EXPERIMENT",
    "RunOptions",
    "Session",
    "SweepCallback",
    "autoscaler_ceiling",
    "capacity",
    "check_devices",
    "check_reachable",
    "connect",
    "ended_trials",
    "experiment_for",
    "max_concurrent",
    "open_session",
    "output_dir",
    "prepare_datasets",
    "run_ablation",
    "shared_experiment_name",
    "storage_key",
    "trial_dirname",
    "trial_name",
    "trial_resources",
]
