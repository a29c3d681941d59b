"""Tune's per-trial experiment state (issue 19): a finished trial's record is trimmed
(mer.sweep.tunestate), an interrupted one is left whole. On real Tune Trial objects, without
Ray running; the whole path through a real sweep, SIGTERM and --resume is checked in
test_reliability_ray.py."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")

from ray import tune  # noqa: E402
from ray.train import Checkpoint  # noqa: E402
from ray.train._internal.session import _TrainingResult  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402

from mer.sweep.inbox import PAYLOAD_KEY  # noqa: E402
from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY  # noqa: E402
from mer.sweep.tunestate import (  # noqa: E402
    KEPT_RESULT_KEYS,
    CompactFinishedTrials,
    compact_finished,
    is_filed,
    leave_filed_trials_out,
    records_to_save,
)

# what one finished trial may cost in Tune's state: its own record (~3 KB: storage context,
# placement group factory, name functions, configs) plus the trimmed runtime part (~1.5 KB)
MAX_FINISHED_TRIAL_BYTES = 5_000


def _trial(tmp_path, epochs: int = 30, final: bool = True) -> Trial:
    """A Tune trial as the controller leaves it after `epochs` progress reports with a
    checkpoint each (the last two kept), then mer's final report (when `final`)."""
    trial = Trial(
        "tune_trainable",
        stub=True,
        config={"spec": "v00/casme2/sub01/s0"},
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        placement_group_factory=tune.PlacementGroupFactory([{"CPU": 1}]),
    )
    trial.create_placement_group_factory()  # as the controller does when it adds a trial
    for epoch in range(1, epochs + 1):
        result = {
            "epoch": epoch,
            "loss": 1.0 / epoch,
            "val_uf1": 0.5,
            FINAL_KEY: False,
            "trial": "v00/casme2/sub01/s0",
            "training_iteration": epoch,
            "time_total_s": float(epoch),
            "done": False,
        }
        trial.update_last_result(result)
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir(parents=True)
        trial.run_metadata.checkpoint_manager.register_checkpoint(
            _TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics=result)
        )
    if final:
        trial.update_last_result(
            {
                FINAL_KEY: True,
                PAYLOAD_KEY: "0" * 32,
                "trial": "v00/casme2/sub01/s0",
                "training_iteration": epochs + 1,
                "time_total_s": float(epochs + 1),
                "done": True,
                "pid": 123,
                "hostname": "node",
                "config": {"spec": "v00/casme2/sub01/s0"},
            }
        )
    return trial


def _bytes(trial: Trial) -> int:
    state, runtime = trial.get_json_state()
    return len(state) + len(runtime)


def test_a_finished_trial_keeps_only_what_resume_and_mer_read(tmp_path):
    trial = _trial(tmp_path)
    before = _bytes(trial)
    assert trial.run_metadata.metric_analysis and trial.checkpoint is not None

    assert compact_finished(trial)

    md = trial.run_metadata
    assert md.metric_analysis == {} and md.metric_n_steps == {}
    assert set(md.last_result) <= set(KEPT_RESULT_KEYS)
    assert md.last_result[FINAL_KEY] is True and md.last_result["done"] is True
    assert trial.checkpoint is None and md.checkpoint_manager.best_checkpoint_results == []
    assert md.checkpoint_manager.checkpoint_config.num_to_keep == 2  # the trial's own config
    after = _bytes(trial)
    assert after < MAX_FINISHED_TRIAL_BYTES < before, (before, after)
    # what a --resume reads back: a finished trial that says it finished
    _, runtime = trial.get_json_state()
    restored = Trial.from_json_state(trial.get_json_state()[0], stub=True)
    restored.restore_run_metadata(runtime)
    assert restored.status == trial.status and restored.last_result[FINAL_KEY] is True
    assert restored.run_metadata.metric_analysis == {} and restored.checkpoint is None


def test_the_trimmed_record_does_not_grow_with_epochs(tmp_path):
    short, long = _trial(tmp_path / "a", epochs=2), _trial(tmp_path / "b", epochs=200)
    compact_finished(short), compact_finished(long)
    assert abs(_bytes(short) - _bytes(long)) <= 8  # digits of the iteration count, no more


def test_an_interrupted_trial_is_left_whole_for_resume(tmp_path):
    """No final report: the trial was stopped (Ctrl-C, SIGTERM, a search's pruning) and a
    --resume continues it from its checkpoint, which must stay in its record."""
    trial = _trial(tmp_path, final=False)
    before = trial.get_json_state()
    assert not compact_finished(trial)
    assert trial.get_json_state() == before and trial.checkpoint is not None
    assert trial.run_metadata.metric_analysis


def test_a_trial_skipped_as_already_done_is_trimmed_too(tmp_path):
    trial = _trial(tmp_path, epochs=1, final=False)
    trial.update_last_result({SKIPPED_KEY: True, FINAL_KEY: False, "trial": "t", "done": True})
    assert compact_finished(trial) and trial.run_metadata.last_result[SKIPPED_KEY] is True


def test_the_callback_trims_as_tune_completes_a_trial_and_pickles_without_state(tmp_path):
    import pickle

    trial = _trial(tmp_path)
    callback = pickle.loads(pickle.dumps(CompactFinishedTrials()))  # tuner.pkl holds it
    callback.on_trial_complete(iteration=1, trials=[trial], trial=trial)
    assert trial.run_metadata.metric_analysis == {}
    assert json.loads(trial.get_json_state()[1])["metric_n_steps"] == {}


def test_snapshots_are_spaced_by_the_size_of_the_study(monkeypatch):
    """Each Tune snapshot rewrites every trial's record: at a fixed period their total grows
    with the square of the study, spaced 0.1 s per trial it grows linearly; a period the user
    set (TUNE_GLOBAL_CHECKPOINT_S) is kept."""
    from mer.sweep import session

    monkeypatch.setattr(session, "_USER_SNAPSHOT_PERIOD", None)
    assert [session.snapshot_period(n) for n in (1, 100, 136, 1020, 4080)] == [
        "10",
        "10",
        "13.6",
        "102",
        "408",
    ]
    monkeypatch.setattr(session, "_USER_SNAPSHOT_PERIOD", "auto")
    assert session.snapshot_period(4080) == "auto"


# ------------------------------------------------------------------ filed trials left out
def _ended(tmp_path, name: str, final: bool) -> Trial:
    trial = _trial(tmp_path / name, epochs=2, final=final)
    trial.set_status(Trial.TERMINATED)  # Tune ends a trial after its last report (or a stop)
    return trial


def test_snapshots_leave_out_filed_trials_and_keep_what_tune_must_still_run(tmp_path):
    filed = [_ended(tmp_path, f"f{i}", final=True) for i in range(3)]
    stopped = _ended(tmp_path, "s", final=False)  # interrupted: --resume continues it
    running = _trial(tmp_path / "r", epochs=2, final=False)
    failed = _trial(tmp_path / "e", epochs=2, final=False)
    failed.set_status(Trial.ERROR)
    trials = [*filed, stopped, running, failed]
    records = {t.trial_id: t.get_json_state() for t in trials}

    assert [is_filed(t) for t in trials] == [True, True, True, False, False, False]
    kept = records_to_save(trials, records)
    assert list(kept) == [stopped.trial_id, running.trial_id, failed.trial_id]
    assert kept[stopped.trial_id] is records[stopped.trial_id]  # Tune's own records, untouched
    # a final report that Tune has not ended the trial for yet: kept until the next snapshot
    pending = _trial(tmp_path / "p", epochs=2, final=True)
    assert not is_filed(pending)
    # every trial filed: one record stays, since Tune's restore reads its session from it
    only_filed = {t.trial_id: records[t.trial_id] for t in filed}
    assert list(records_to_save(filed, only_filed)) == [filed[0].trial_id]
    assert records_to_save([], {}) == {}


def test_tunes_snapshot_method_is_wrapped_for_the_run_and_put_back(tmp_path):
    """The one Tune method the state relies on (Ray 2.60): a Ray upgrade that renames it fails
    here, not silently in a sweep."""
    from types import SimpleNamespace

    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.__dict__["_get_trial_checkpoints"]
    filed, stopped = _ended(tmp_path, "f", final=True), _ended(tmp_path, "s", final=False)
    controller = SimpleNamespace(
        _trials=[filed, stopped], _trials_to_cache={filed, stopped}, _trial_metadata={}
    )
    with leave_filed_trials_out() as active:
        assert active and TuneController._get_trial_checkpoints is not original
        saved = TuneController._get_trial_checkpoints(controller)
    assert TuneController.__dict__["_get_trial_checkpoints"] is original
    assert list(saved) == [stopped.trial_id]
    assert set(controller._trial_metadata) == {filed.trial_id, stopped.trial_id}  # Tune's cache
    # a record Tune can restore the trial from
    restored = Trial.from_json_state(saved[stopped.trial_id][0], stub=True)
    assert restored.trial_id == stopped.trial_id and restored.status == Trial.TERMINATED


def test_a_tune_without_the_method_keeps_its_whole_state_and_says_so(monkeypatch, caplog):
    from mer.sweep import tunestate

    monkeypatch.setattr(tunestate, "_controller_class", lambda: type("Controller", (), {}))
    with caplog.at_level("WARNING"), leave_filed_trials_out() as active:
        assert active is False
    assert "keeps every trial's record" in caplog.text
