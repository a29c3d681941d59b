"""Keeps Tune's experiment state small: a finished trial's record is trimmed to what a restore
and the ResultGrid still use, and its snapshots leave out the trials mer has filed.

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
and folder functions, configs): about 4.7 KB, of which nothing more can go while Tune may restore
the trial. `tests/test_tune_state.py` holds it to that, so a Ray upgrade that changes these
fields shows there.

A filed trial need not be restored at all: `--resume` skips it (its results are on disk), and a
trial whose results were deleted since runs again in an experiment of its own (mer.sweep.ablation).
So while a sweep runs (`leave_filed_trials_out`), each snapshot keeps only the records of the
trials Tune still has to run or retry (running, pending, interrupted, failed), plus one record
Tune's restore reads its session timestamp from: the state scales with the trials in flight, not
with the study (bench.scale at 1,020 trials, 2 at a time: a 16 KB snapshot, against 4.8 MB). The
trials stay in Tune's memory for the rest of the run (its ResultGrid is whole); only what is
written leaves them out. That takes one method of Tune's controller,
`TuneController._get_trial_checkpoints` (Ray 2.60), wrapped for the length of the run; a Tune
without it keeps its whole state and the log says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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


def is_filed(trial: Any) -> bool:
    """Tune ended the trial after mer's final (or already-done) report: its results are in the
    results folder (or it was filed as failed, and `--resume` runs it again as a lost trial)."""
    if getattr(trial, "status", None) != "TERMINATED":
        return False
    result = trial.run_metadata.last_result or {}
    return bool(result.get(FINAL_KEY) or result.get(SKIPPED_KEY))


def records_to_save(trials: Sequence[Any], records: Mapping[str, Any]) -> dict[str, Any]:
    """Of Tune's records (trial id -> its JSON state), those a snapshot keeps: every trial's but
    the filed ones', and at least one, since Tune's restore takes the session timestamp of its
    driver folder from the first record."""
    filed = {t.trial_id for t in trials if is_filed(t)}
    kept = {tid: rec for tid, rec in records.items() if tid not in filed}
    if not kept and records:
        first = next(iter(records))
        kept[first] = records[first]
    return kept


def _controller_class() -> Any:
    from ray.tune.execution.tune_controller import TuneController  # lazy: tests replace it

    return TuneController


@contextmanager
def leave_filed_trials_out() -> Iterator[bool]:
    """For the length of a Tune run in this process, its experiment snapshots leave out the
    records of filed trials (`records_to_save`); yields whether that is in effect."""
    controller = _controller_class()
    original = controller.__dict__.get("_get_trial_checkpoints")
    if original is None:
        log.warning(
            "this Ray's Tune has no TuneController._get_trial_checkpoints: its experiment "
            "state keeps every trial's record (about 5 KB each)"
        )
        yield False
        return

    def _get_trial_checkpoints(self: Any) -> Any:
        records = original(self)
        try:
            return records_to_save(self._trials, records)
        except Exception as exc:  # noqa: BLE001 - a smaller state must never fail a sweep
            log.debug("Tune state kept whole: %r", exc)
            return records

    controller._get_trial_checkpoints = _get_trial_checkpoints
    try:
        yield True
    finally:
        controller._get_trial_checkpoints = original
