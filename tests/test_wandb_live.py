"""Live W&B: a trial logs its own run epoch by epoch while it trains (mer.sweep.live), through its
reporter, so the curve's timestamps are the epochs' real end times, spread over the trial; a
retried trial continues the same run (one offline folder, every epoch once)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mer.config import load_config, variant_config
from mer.data.cache import prepare_data
from mer.experiment.plan import build_plan
from mer.sweep.hooks import NoTrialHooks
from mer.sweep.live import LiveRun, LiveSettings, open_live_run, trial_run_id
from mer.sweep.payloads import EPOCH_TIMES_KEY, LIVE_KEY
from mer.sweep.trial import LiveReporter, LocalReporter, execute_trial
from tests.conftest import tiny_overrides
from tests.support.wandb_offline import offline_runs

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


class _SlowEpochs(NoTrialHooks):
    """Checkpoints every epoch; sleeps after each so that epochs are well apart in time, and
    fails once after `fail_at`'s checkpoint when asked."""

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at

    def after_checkpoint(self, spec, epoch):  # noqa: ANN001
        time.sleep(0.4)
        if epoch == self.fail_at:
            raise RuntimeError(f"injected failure after epoch {epoch}")


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config(
        REPO / "sweeps" / "demo.yaml",
        tiny_overrides(cache) + [f"train.epochs={EPOCHS}", "ablations={full: {}}"],
    )
    vcfg = variant_config(cfg, "full")
    data = prepare_data(vcfg.data)
    plan = build_plan(
        cfg, lambda d: (data.samples, list(data.class_names)), variants={"full": vcfg}
    )
    spec = plan.trials_of("full", 0)[0]
    return {"cfg": vcfg, "data": data, "plan": plan, "spec": spec}


def _settings(out: Path, **kw) -> LiveSettings:
    return LiveSettings(
        project="mer-test", entity=None, mode="offline", dir=str(out), sweep="demo",
        sweep_id="abcd1234", tags=("lab-a",), **kw,
    )  # fmt: skip


def _run(trial, out: Path, *, hooks, resume: bool = False, settings: LiveSettings | None = None):
    settings = settings or _settings(out)
    run = LiveRun(settings, trial["spec"], trial["cfg"], oracle=True)
    reporter = LiveReporter(LocalReporter(out / "ckpt", resume=resume), run)
    try:
        return execute_trial(
            trial["spec"], trial["cfg"], trial["data"], trial["plan"].fold(trial["spec"]),
            reporter, hooks=hooks, report_every_s=0.0, plan_oracle=True,
        )  # fmt: skip
    except BaseException:
        run.fail()
        raise


def test_a_trial_logs_one_row_per_epoch_as_it_trains(trial, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-live-0123456789")
    t0 = time.time()
    payload = _run(trial, tmp_path, hooks=_SlowEpochs())
    t1 = time.time()
    assert payload[LIVE_KEY] == {
        "run_id": trial_run_id(_settings(tmp_path), trial["spec"].id),
        "mode": "offline",
    }
    (run,) = offline_runs(tmp_path)
    assert run["id"] == payload[LIVE_KEY]["run_id"] and run["name"] == trial["spec"].id
    assert run["group"] == "demo/full" and {"trial", "oracle", "lab-a"} <= set(run["tags"])
    assert run["config"]["train.epochs"] == EPOCHS and run["config"]["fold"] == trial["spec"].fold
    rows = [h for h in run["history"] if "loss" in h]
    assert [h["_step"] for h in rows] == list(range(1, EPOCHS + 1))  # one row per epoch
    assert [h["loss"] for h in rows] == pytest.approx([r["loss"] for r in payload["history"]])
    stamps = [h["_timestamp"] for h in rows]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    # spread over the trial, as the epochs ended (each >= 0.4 s apart), not written at its end
    assert all(b - a >= 0.35 for a, b in zip(stamps, stamps[1:]))
    assert t0 <= stamps[0] < stamps[-1] <= t1
    assert stamps == pytest.approx(payload[EPOCH_TIMES_KEY], abs=1e-3)
    assert run["summary"]["test/uf1"] == pytest.approx(payload["test_scores"]["uf1"])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"fake-key-live-0123456789" not in path.read_bytes(), path


def test_a_retried_trial_continues_its_run_with_the_restored_epochs_real_times(
    trial, tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-live-0123456789")
    with pytest.raises(RuntimeError, match="after epoch 2"):
        _run(trial, tmp_path, hooks=_SlowEpochs(fail_at=2))
    (first,) = offline_runs(tmp_path)
    first_stamps = [h["_timestamp"] for h in first["history"] if "loss" in h]
    assert len(first_stamps) == 2  # the failed attempt's live epochs
    time.sleep(1.0)
    payload = _run(trial, tmp_path, hooks=_SlowEpochs(), resume=True)
    assert payload["resumed_from"] == 2 and payload[LIVE_KEY]
    (run,) = offline_runs(tmp_path)  # the failed attempt's folder was replaced
    rows = [h for h in run["history"] if "loss" in h]
    assert [h["_step"] for h in rows] == list(range(1, EPOCHS + 1))
    stamps = [h["_timestamp"] for h in rows]
    assert stamps[:2] == pytest.approx(first_stamps, abs=1e-3)  # when they really ended
    assert stamps[2] - stamps[1] >= 1.0 and all(b > a for a, b in zip(stamps, stamps[1:]))


def test_offline_trials_on_another_node_leave_their_run_to_the_driver(trial, tmp_path):
    """Offline files belong in the driver's results folder; online runs can start anywhere."""
    spec, cfg = trial["spec"], trial["cfg"]
    offline = _settings(tmp_path, driver_node="node-a")
    assert isinstance(open_live_run(offline, spec, cfg, False, node="node-a"), LiveRun)
    assert open_live_run(offline, spec, cfg, False, node="node-b") is None
    online = LiveSettings(**{**offline.__dict__, "mode": "online"})
    assert isinstance(open_live_run(online, spec, cfg, False, node="node-b"), LiveRun)
    assert open_live_run(None, spec, cfg, False, node="node-a") is None  # W&B disabled


def test_a_broken_wandb_never_fails_the_trial(trial, tmp_path, monkeypatch, caplog):
    """W&B cannot start (here: a project name it refuses): the trial finishes, says so once,
    and its payload carries no live run, so the driver logs it afterwards."""
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-live-0123456789")
    bad = LiveSettings(
        project="bad/project", entity=None, mode="offline", dir=str(tmp_path), sweep="demo",
        sweep_id="abcd1234",
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="mer.sweep.live"):
        payload = _run(trial, tmp_path, hooks=NoTrialHooks(), settings=bad)
    assert LIVE_KEY not in payload and len(payload["history"]) == EPOCHS
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "the sweep's driver logs this trial's run" in caplog.records[0].message


def test_a_variants_pooled_scores_reach_wandb_when_it_completes(tmp_path, monkeypatch):
    """The variant's summary run opens with its own pooled scores as soon as it completes; its
    comparison (which depends on the other variants) and the `on_done` marker wait for the
    final table. A sweep stopped before then leaves the run open-ended, and the --resume that
    finishes the sweep completes the same run (one offline folder per variant)."""
    import pandas as pd

    from mer.config import from_dict
    from mer.experiment.store import ResultsStore, write_run_files
    from mer.experiment.summary import write_summary
    from mer.sweep.tracking import WandbTracker
    from tests.test_trust import ME, _samples

    monkeypatch.setenv("WANDB_API_KEY", "fake-key-live-0123456789")
    raw = {"name": "fam", "data": {"dataset": "synthetic", "regions": {"policy": "fixed"}},
           "ablations": {"base": {}, "good": {"data.regions.policy": "all"}}}  # fmt: skip
    table = _samples("casme2", 6, 3, 3)
    plan = build_plan(from_dict(raw), lambda d: (table, ME))
    out = tmp_path / "fam"
    write_run_files(out, plan)
    store = ResultsStore(out)
    for variant in ("base", "good"):
        for spec in plan.trials_of(variant):
            rows = table.iloc[plan.fold(spec).test]
            store.write_trial(spec, {"mer_final": True, "history": [], "predictions": {
                "sample_id": rows["sample_id"].tolist(), "dataset": rows["dataset"].tolist(),
                "subject": rows["subject"].tolist(), "fold": [spec.fold] * len(rows),
                "split": ["test"] * len(rows), "true": rows["label"].tolist(),
                "pred": rows["label"].tolist(), "oracle": [False] * len(rows)}})  # fmt: skip
    final = write_summary(out, plan).table.set_index("variant", drop=False)
    row = final.loc["good"].to_dict()

    first = WandbTracker(tmp_path, sweep="fam", project="t", entity=None, mode="offline")
    done: list[str] = []
    first.variant(plan, "good", row, [], pd.DataFrame(), on_done=lambda: done.append("good"))
    first.close()  # stopped before the final table (an interrupted sweep)
    (early,) = offline_runs(tmp_path)
    assert early["name"] == "good" and "summary" in early["tags"]
    assert early["summary"]["pooled/uf1"] == pytest.approx(row["uf1_mean"])
    assert early["summary"]["pooled/uf1_low"] == pytest.approx(row["uf1_low"])
    assert not any(k.startswith(("compare/", "table/")) for k in early["summary"])
    assert done == []  # not complete: the marker that stops --resume from logging it again

    second = WandbTracker(tmp_path, sweep="fam", project="t", entity=None, mode="offline")
    assert second.sweep_id == first.sweep_id  # kept in OUT/wandb/sweep_id
    second.variant(plan, "good", row, [], pd.DataFrame(), on_done=lambda: done.append("good"))
    second.sweep(plan, final.reset_index(drop=True))
    second.close()
    assert done == ["good"] and second.errors == []
    runs = offline_runs(tmp_path)
    good = [r for r in runs if r["name"] == "good"]
    assert len(good) == 1 and good[0]["id"] == early["id"]  # the same run, completed
    assert good[0]["summary"]["compare/uf1_diff"] == pytest.approx(row["uf1_diff"])


def test_a_tune_sweeps_trial_runs_were_written_while_they_trained(finished_sweep):
    """In a real sweep (Ray Tune, offline W&B) every trial run has one row per epoch, stamped
    within the trial's own start and end, in order: written by the trial, as it trained."""
    import json

    out = finished_sweep["out"]
    trial_runs = [r for r in offline_runs(out) if "trial" in r["tags"]]
    assert len(trial_runs) == 11  # one per finished trial, the retried one included once
    for run in trial_runs:
        (folder,) = [
            p.parent
            for p in out.glob("trials/*/*/*/result.json")
            if json.loads(p.read_text())["trial"] == run["name"]
        ]
        info = json.loads((folder / "result.json").read_text())
        assert info[LIVE_KEY]["run_id"] == run["id"]
        stamps = [h["_timestamp"] for h in run["history"] if "loss" in h]
        assert [h["_step"] for h in run["history"] if "loss" in h] == [1, 2, 3]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))
        assert stamps == pytest.approx(info[EPOCH_TIMES_KEY], abs=1e-3)
        if info.get("resumed_from") is None:
            assert info["started_at"] <= stamps[0] and stamps[-1] <= info["ended_at"]
        assert (folder / "wandb.done").exists()
