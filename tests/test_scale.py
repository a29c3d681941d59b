"""A sweep's driver work per trial stays flat as the study grows (issue 19), checked without Ray:
the per-trial pool computes the full pass's rows exactly and reads each trial's logs once; plan
lookups by key; what Tune is sent; cached model statistics (identical numbers, no torch import);
per-variant report figures drawn once and reused; a finished sweep's --resume without Ray;
W&B variant granularity."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer.config import to_dict
from mer.errors import ConfigError
from mer.experiment.aggregate import aggregate
from mer.experiment.pooling import RunningPool
from mer.experiment.run import load_run
from mer.experiment.store import ResultsStore, TrialRecord, write_run_files
from mer.experiment.summary import write_summary
from mer.sweep.progress import Progress
from mer.sweep.tracking import Tracker
from mer.util.jsonio import to_plain
from tests.test_sweep_results import _payload, _plan, fill

REPO = Path(__file__).resolve().parents[1]


def _full_pass(out, plan):
    return aggregate(load_run(out, plan=to_plain(plan.to_json()), config=to_dict(plan.cfg)))


# ------------------------------------------------------------------------- per-trial pooling
def test_the_pool_computes_the_full_pass_rows_in_any_order_of_arrival(tmp_path):
    plan, failed = fill(tmp_path)
    full = _full_pass(tmp_path, plan)
    store = ResultsStore(tmp_path)
    pool = RunningPool(tmp_path, to_plain(plan.to_json()), to_dict(plan.cfg))
    order = list(plan.trials)
    np.random.default_rng(3).shuffle(order)
    for spec in order:
        pool.add(store.record(spec))
    assert pool.seed_rows() == full.seeds  # every key and value, confusion JSON included
    free_1 = next(r for r in pool.seed_rows() if r["variant"] == "free" and r["seed"] == 1)
    assert free_1["failed_trials"] == failed.id and not free_1["complete"]
    table = full.table.set_index("variant")
    for variant in plan.variants:
        row = pool.variant_row(variant)
        assert row["variant"] == variant
        for key, value in row.items():
            if key == "variant":
                continue
            want = table.loc[variant, key]
            if isinstance(value, float) and np.isnan(value):
                assert pd.isna(want), (variant, key)
            else:
                assert value == want, (variant, key)
    got = pool.predictions("free").reset_index(drop=True)
    want = full.predictions[full.predictions["variant"] == "free"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_a_retried_failure_replaces_the_failed_record_in_the_pool(tmp_path):
    plan, failed = fill(tmp_path)
    store = ResultsStore(tmp_path)
    pool = RunningPool(tmp_path, to_plain(plan.to_json()), to_dict(plan.cfg))
    for spec in plan.trials:
        pool.add(store.record(spec))
    assert pool.seed_row("free", 1)["folds_failed"] == 1
    _, table = _plan()
    rng = np.random.default_rng(9)
    store.write_trial(failed, _payload(failed, plan.fold(failed), table, rng, False))
    pool.add(store.record(failed))
    row = pool.seed_row("free", 1)
    assert row["folds_failed"] == 0 and row["complete"]
    assert pool.seed_rows() == _full_pass(tmp_path, plan).seeds


class _Counting:
    """Counts the prediction logs read (TrialRecord.predictions) while it is installed."""

    def __init__(self, monkeypatch):
        self.reads: list[str] = []
        original = TrialRecord.predictions

        def counted(rec):
            self.reads.append(rec.trial)
            return original(rec)

        monkeypatch.setattr(TrialRecord, "predictions", counted)


def test_the_driver_reads_each_trial_log_once_and_writes_no_summary_mid_run(tmp_path, monkeypatch):
    """Settling every trial of a sweep reads each prediction log exactly once (no rereading of
    every log when a variant completes) and writes no summary file; the full pass at the end
    agrees with the pool."""
    plan, table = _plan()
    store = ResultsStore(tmp_path)
    write_run_files(tmp_path, plan)
    progress = Progress(plan, store, Tracker())
    counter = _Counting(monkeypatch)
    rng = np.random.default_rng(0)
    for spec in plan.trials:
        vp = plan.variants[spec.variant]
        store.write_trial(spec, _payload(spec, plan.fold(spec), table, rng, vp.oracle))
        progress.mark_done(spec)
        progress.track_trial(spec, vp.cfg, {}, vp.oracle)
    assert sorted(counter.reads) == sorted(t.id for t in plan.trials)
    assert not (tmp_path / "summary.md").exists() and not (tmp_path / "summary.csv").exists()
    # each finished variant's figures were drawn once (in a thread), for the report to reuse
    progress.wait_figures()
    figures = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert figures == sorted(
        f"{kind}_{v}.png" for v in ("full", "free") for kind in ("confusion", "subjects", "curves")
    )
    summary = write_summary(tmp_path, plan)
    assert progress.check(summary)
    assert progress.pool is not None and progress.pool.seed_rows() == summary.seeds


def test_a_resumed_driver_pools_the_trials_filed_before_it(tmp_path):
    plan, failed = fill(tmp_path)
    progress = Progress(plan, ResultsStore(tmp_path), Tracker())
    assert progress.done_at_start == {t.id for t in plan.trials} - {failed.id}
    assert progress.pool is not None
    assert progress.pool.seed_rows() == _full_pass(tmp_path, plan).seeds


# ------------------------------------------------------------------------------ plan lookups
def test_plan_lookups_by_key_match_a_scan_and_survive_pickling():
    plan, _ = _plan()
    for t in plan.trials:
        assert plan.spec(t.id) is t
    for v in plan.variants:
        for seed in (0, 1, None):
            scan = [t for t in plan.trials if t.variant == v and (seed is None or t.seed == seed)]
            assert plan.trials_of(v, seed) == scan
    assert plan.trial_ids == frozenset(t.id for t in plan.trials)
    with pytest.raises(ConfigError, match="unknown trial 'nope'"):
        plan.spec("nope")
    copy = pickle.loads(pickle.dumps(plan))
    assert copy._index is None and copy.spec(plan.trials[3].id) == plan.trials[3]


# ------------------------------------------------------------------------- what Tune is sent
def test_tune_gets_a_token_and_scalars_not_the_payload():
    from mer.sweep.inbox import PAYLOAD_KEY, Inbox
    from mer.sweep.trial import FINAL_KEY, TUNE_KEYS, TuneReporter, final_report

    plan, table = _plan()
    spec = plan.trials[0]
    payload = _payload(spec, plan.fold(spec), table, np.random.default_rng(0), True)
    payload["predictions"]["split"][0] = "val"
    small = final_report(payload, "tok", search=False)
    assert small == {FINAL_KEY: True, "trial": spec.id, PAYLOAD_KEY: "tok"}
    search = final_report(payload, "tok", search=True)
    assert search["val_true"] == [int(payload["predictions"]["true"][0])]
    assert search["val_pred"] == [int(payload["predictions"]["pred"][0])]
    assert len(json.dumps(search)) < 200  # a fold's val labels, nothing that grows with epochs
    progress = {"epoch": 3, "loss": 0.5, "val_uf1": 0.4, FINAL_KEY: False, "trial": spec.id}
    assert TuneReporter(inbox=object())._for_tune(progress) == {k: progress[k] for k in TUNE_KEYS}
    box = Inbox()
    assert box.put("a", payload) == 1
    assert box.take("a") is payload and box.take("a") is None


def test_a_trial_whose_checkpoint_was_deleted_is_recognised(tmp_path):
    """After a killed driver, Tune's state can point a trial at the checkpoint deleted when it
    finished (Session.on_complete); with its results deleted since, that is no failure of the
    trial: it runs again (tests/test_sweep_resume.py, the third --resume)."""
    from types import SimpleNamespace

    from ray.train import Checkpoint

    from mer.sweep.session import _checkpoint_deleted

    folder = tmp_path / "checkpoint_000000"
    folder.mkdir()
    (folder / "state.pt").write_bytes(b"x")
    trial = SimpleNamespace(checkpoint=Checkpoint.from_directory(folder))
    assert not _checkpoint_deleted(trial)
    (folder / "state.pt").unlink()
    folder.rmdir()
    assert _checkpoint_deleted(trial)
    assert not _checkpoint_deleted(SimpleNamespace(checkpoint=None))


# ----------------------------------------------------------------------------- model stats
def test_model_statistics_are_cached_with_identical_numbers_and_no_torch_import(tmp_path):
    from mer.config import load_config
    from mer.models.summary import count_model, model_stats, stats_path

    cfg = load_config(REPO / "sweeps" / "demo.yaml", [f"data.cache_dir={tmp_path}"])
    first = model_stats(cfg)
    assert stats_path(cfg).exists()
    assert first == count_model(cfg) and model_stats(cfg) == first
    other = load_config(
        REPO / "sweeps" / "demo.yaml", [f"data.cache_dir={tmp_path}", "data.size=48"]
    )
    assert stats_path(other) != stats_path(cfg)
    code = (
        "import json, sys; from mer.config import load_config; from mer.models.summary import "
        f"model_stats; cfg = load_config({str(REPO / 'sweeps' / 'demo.yaml')!r}, "
        f"['data.cache_dir={tmp_path}']); s = model_stats(cfg); "
        "print(json.dumps([s['params'], s['gflops'], s['output_shape'], 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    params, gflops, shape, torch_imported = json.loads(out)
    assert (params, gflops, tuple(shape)) == (
        first["params"],
        first["gflops"],
        first["output_shape"],
    )
    assert not torch_imported  # a cached count needs no torch


# ------------------------------------------------------------------------- report figures
def test_report_figures_are_drawn_once_and_redrawn_when_their_rows_change(tmp_path):
    from mer.report import write_report

    plan, failed = fill(tmp_path)
    write_report(tmp_path, formats=("md",))
    pngs = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "report").glob("*_*.png")}
    assert len(pngs) == 6
    write_report(tmp_path, formats=("md",))
    again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "report").glob("*_*.png")}
    assert again == pngs  # nothing drawn again
    _, table = _plan()
    store = ResultsStore(tmp_path)
    store.write_trial(
        failed, _payload(failed, plan.fold(failed), table, np.random.default_rng(5), False)
    )
    write_report(tmp_path, formats=("md",))
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "report").glob("*_*.png")}
    changed = {name for name in pngs if after[name] != pngs[name]}
    assert changed == {"confusion_free.png", "subjects_free.png", "curves_free.png"}


# ------------------------------------------------------------------- a finished --resume
def _finished_folder(out: Path):
    plan, failed = fill(out)
    _, table = _plan()
    ResultsStore(out).write_trial(
        failed, _payload(failed, plan.fold(failed), table, np.random.default_rng(2), False)
    )
    return plan


def _resume(out: Path, *extra: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from mer.cli import main; rc = main(sys.argv[1:]); "
        "print('RAY IMPORTED' if 'ray' in sys.modules else 'NO RAY'); sys.exit(rc)"
    )
    argv = ["sweep", str(out / "config.yaml"), "--out", str(out), "--resume", *extra]
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_a_finished_sweep_resumes_to_its_table_without_ray(tmp_path):
    out = tmp_path / "out"
    plan = _finished_folder(out)
    first = _resume(out, "--wandb", "disabled")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip().endswith("NO RAY")
    assert "full [oracle]" in first.stdout and "INCOMPLETE" not in first.stdout
    assert "writing its summary and report" in first.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    assert (summary["status"] == "complete").all()
    full = _full_pass(out, plan).table.set_index("variant")
    assert summary.loc["free", "uf1_mean"] == pytest.approx(full.loc["free", "uf1_mean"], abs=1e-12)
    assert (out / "report" / "report.html").exists()
    stamp = (out / "summary.md").stat().st_mtime_ns
    second = _resume(out, "--wandb", "disabled")
    assert second.returncode == 0 and second.stdout.strip().endswith("NO RAY")
    assert "nothing to run" in second.stderr
    assert (out / "summary.md").stat().st_mtime_ns == stamp


def test_a_sweep_with_work_left_is_not_finished(tmp_path):
    from mer.config import load_config
    from mer.sweep.finished import finished_sweep
    from mer.sweep.options import RunOptions

    out = tmp_path / "out"
    fill(out)  # one failed trial: --resume retries it
    cfg = load_config(out / "config.yaml")
    assert finished_sweep(cfg, RunOptions(out=out, resume=True, wandb="disabled")) is None
    done = tmp_path / "done"
    _finished_folder(done)
    cfg = load_config(done / "config.yaml")
    assert finished_sweep(cfg, RunOptions(out=done, resume=False, wandb="disabled")) is None
    # W&B on and no run logged yet: the normal path logs them
    assert finished_sweep(cfg, RunOptions(out=done, resume=True, wandb="offline")) is None
    found = finished_sweep(cfg, RunOptions(out=done, resume=True, wandb="disabled"))
    assert found is not None and bool(found.table["complete"].all())


# -------------------------------------------------------------------- W&B granularity
def test_variant_granularity_logs_no_trial_runs_and_a_trials_table_per_variant(
    tmp_path, monkeypatch
):
    from mer.sweep.tracking import WandbTracker
    from mer.sweep.variant_runs import curves, line_series, trial_table
    from tests.support.wandb_offline import offline_runs

    monkeypatch.setenv("WANDB_API_KEY", "fake-key-granularity-0123456789")
    plan, failed = fill(tmp_path)
    trials = trial_table(tmp_path, "free")
    assert len(trials) == len(plan.trials_of("free"))
    assert (trials["status"] == "failed").sum() == 1
    hist = curves(tmp_path, "free")
    assert len(hist) == 3 * (len(plan.trials_of("free")) - 1)
    series = line_series(hist, "loss")
    assert series is not None and len(series["keys"]) == len(plan.trials_of("free")) - 1
    assert all(ys == pytest.approx([1.0, 0.5, 1 / 3]) for ys in series["ys"])

    tracker = WandbTracker(
        tmp_path, sweep="res", project="mer-test", entity=None, mode="offline",
        granularity="variant",
    )  # fmt: skip
    assert not tracker.per_trial
    assert tracker.live_settings(driver_node=None) is None  # no trial logs a run of its own
    done = []
    spec = plan.trials[0]
    tracker.trial(spec, plan.variants["full"].cfg, {}, True, on_done=lambda: done.append(1))
    summary = write_summary(tmp_path, plan)
    row = summary.table.set_index("variant").loc["free"].to_dict() | {"variant": "free"}
    seeds = [r for r in summary.seeds if r["variant"] == "free"]
    pred = summary.predictions[summary.predictions["variant"] == "free"]
    tracker.variant(plan, "free", row, seeds, pred)
    tracker.sweep(plan, summary.table)
    tracker.close()
    assert done == [] and tracker.errors == []
    runs = {r["name"]: r for r in offline_runs(tmp_path)}
    assert set(runs) == {"free", "res summary"}  # no run per trial
    logged = {k for h in runs["free"]["history"] for k in h}
    assert {"trials/_type", "curves/_type", "curves/loss_table/_type"} <= logged
    # the variant run's trials table: one row per fold and seed, the failed one marked so
    (path,) = (tmp_path / "wandb").glob("offline-run-*/files/media/table/trials_*.table.json")
    logged_trials = json.loads(path.read_text())
    rows = [dict(zip(logged_trials["columns"], r)) for r in logged_trials["data"]]
    assert sorted((r["fold"], r["seed"]) for r in rows) == sorted(
        (t.fold, t.seed) for t in plan.trials_of("free")
    )
    assert [r["trial"] for r in rows if r["status"] == "failed"] == [failed.id]
    (path,) = (tmp_path / "wandb").glob("offline-run-*/files/media/table/curves_*.table.json")
    logged_curves = json.loads(path.read_text())
    assert len(logged_curves["data"]) == len(hist)  # every epoch of every finished fold


# --------------------------------------------------------------------------- Ray start-up
def test_a_background_ray_start_hands_its_error_to_the_caller():
    """Ray starts in a thread while the driver plans (mer.sweep.cluster.BackgroundStart); a bad
    --address fails there and reaches the caller as the same one-line error."""
    from mer.sweep.cluster import BackgroundStart

    start = BackgroundStart("http://localhost:8265")
    with pytest.raises(ConfigError, match="not a URL"):
        start.result()
    start.abandon()  # nothing was started: nothing to shut down
