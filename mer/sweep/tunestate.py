"""Keeps Tune's experiment state small: a finished trial's record is trimmed to what a restore
and the ResultGrid still use.

Why: Tune rewrites its whole experiment state (experiment_state-*.json) at every snapshot and
uploads it to `--storage`. Per trial it keeps, besides its own record, the statistics of every
numeric result key (`metric_analysis`: max, min, mean, last-5 and last-10 means, and the deques
behind them, `metric_n_steps`), the whole last result, and the checkpoint manager with the
results of its last checkpoints: about 12 KB per trial, 51 MB at 4,080 trials. For a trial whose
results mer has filed (its final report arrived) none of that is read again: mer's results
folder is the record, `Session.on_complete` has deleted its checkpoints, a `--resume` does not
run it again, and mer reads only `FINAL_KEY`/`SKIPPED_KEY` of its last result (`ended_trials`).
Interrupted and failed trials are left whole: a `--resume` continues them from their checkpoint.

What is left per trial is Tune's own record (storage context, placement group factory, name
and folder functions, configs): about 4 KB. `tests/test_tune_state.py` holds it to that, so a
Ray upgrade that changes these fields shows there.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import tune

from mer.sweep.inbox import PAYLOAD_KEY
from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY

log = logging.getLogger(__name__)

# what a finished trial's last result keeps: mer's markers, and Tune's identifying keys
KEPT_RESULT_KEYS = (
    FINAL_KEY,
    SKIPPED_KEY,
    PAYLOAD_KEY,
    "trial",
    "trial_id",
    "done",
    "training_iteration",
    "time_total_s",
)


class CompactFinishedTrials(tune.Callback):
    """Trims each finished trial's Tune record (`compact_finished`) as it completes. Stateless:
    it is pickled into tuner.pkl and restored with the experiment."""

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        compact_finished(trial)


def compact_finished(trial: Any) -> bool:
    """Drop a finished trial's metric statistics, checkpoint list and all but the kept keys of
    its last result; True when trimmed. Only a trial whose final (or already-done) report
    arrived is trimmed. A Tune that no longer has these fields leaves the trial as it is."""
    result = dict(trial.last_result or {})
    if not (result.get(FINAL_KEY) or result.get(SKIPPED_KEY)):
        return False  # interrupted or stopped: a --resume needs its checkpoint
    try:
        md = trial.run_metadata
        # each assignment invalidates the record's cached JSON (_TrainingRunMetadata.__setattr__)
        md.last_result = {k: result[k] for k in KEPT_RESULT_KEYS if k in result}
        md.metric_analysis = {}
        md.metric_n_steps = {}
        manager = md.checkpoint_manager
        if manager is not None:  # its checkpoints were deleted by Session.on_complete
            md.checkpoint_manager = type(manager)(checkpoint_config=manager.checkpoint_config)
    except Exception as exc:  # noqa: BLE001 - a smaller state must never fail a sweep
        log.debug("Tune state of %s left as it is: %r", trial, exc)
        return False
    return True
