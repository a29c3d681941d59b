"""Ablation sweep end to end on a real (local) Ray: one small sweep, several checks.

Ray is started with 4 CPUs and 1 fake GPU, trials ask for 0.25 GPU + 0.5 CPU with up to 8 allowed
at once, so the GPU share is what limits them to 4 (checked with a start barrier of 4 and the
trials' start/end times). Test hooks make one trial fail once right after its first checkpoint
(it must resume from it) and one trial fail every time (its variant/seed must be INCOMPLETE).
W&B runs offline with a fake API key in the environment that must not appear in any file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from mer.config import load_config  # noqa: E402
from mer.experiment.store import ResultsStore  # noqa: E402
from mer.metrics import megc_scores  # noqa: E402
from tests.conftest import FINISHED_SWEEP_FAKE_KEY  # noqa: E402
from tests.support.wandb_offline import offline_runs  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = FINISHED_SWEEP_FAKE_KEY


@pytest.fixture(scope="module")
def sweep(finished_sweep):
    return finished_sweep


def test_trial_count_and_results_folder(sweep):
    out, cfg = sweep["out"], sweep["cfg"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["num_trials"] == 2 * 3 * 2 == len(plan["trials"])
    records = ResultsStore(out).records()
    assert len(records) == 12
    assert sum(r.status == "done" for r in records.values()) == 11
    assert sweep["status"] == 1  # one trial failed permanently
    assert load_config(out / "config.yaml").ablations == cfg.ablations
    env = json.loads((out / "environment.json").read_text())
    assert env["cluster"]["GPU"] == 1 and env["versions"]["ray"]


def test_pooled_metrics_equal_a_recomputation_from_the_prediction_logs(sweep):
    out = sweep["out"]
    logs = pd.concat([pd.read_csv(p) for p in sorted(out.glob("trials/*/*/*/predictions.csv"))])
    seeds = pd.read_csv(out / "summary_seeds.csv")
    for _, row in seeds.iterrows():
        part = logs[
            (logs["variant"] == row["variant"])
            & (logs["seed"] == row["seed"])
            & (logs["split"] == "test")
        ]
        want = megc_scores(part["true"], part["pred"], 3)
        assert row["uf1"] == pytest.approx(want["uf1"])
        assert row["uar"] == pytest.approx(want["uar"])
        assert row["acc"] == pytest.approx(want["acc"])
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    full = seeds[seeds["variant"] == "full"]["uf1"]
    assert summary.loc["full", "uf1_mean"] == pytest.approx(full.mean())
    assert summary.loc["full", "name"] == "full [oracle]"


def test_report_table_and_sweep_summary_agree(sweep):
    """`mer report` and the sweep's summary.csv pool the same logs the same way, failures and
    oracle tags included."""
    from mer.report import ablation_table, load_run

    summary = pd.read_csv(sweep["out"] / "summary.csv").set_index("variant")
    table = ablation_table(load_run(sweep["out"])).set_index("variant")
    assert list(table.index) == list(summary.index)
    for variant, row in table.iterrows():
        want = summary.loc[variant]
        for m in ("uf1", "uar", "acc"):
            assert row[f"{m}_mean"] == pytest.approx(want[f"{m}_mean"], abs=1e-12)
            assert row[f"{m}_std"] == pytest.approx(want[f"{m}_std"], abs=1e-12, nan_ok=True)
        assert (row["folds_done"], row["folds_total"]) == (want["folds_done"], want["folds_total"])
        assert row["folds_failed"] == want["folds_failed"]
        assert bool(row["complete"]) == bool(want["complete"])
        assert bool(row["oracle"]) == bool(want["oracle"])
    assert table["folds_failed"].sum() == 1 and table.loc["full", "oracle"]


def test_permanent_failure_is_reported_not_hidden(sweep):
    out = sweep["out"]
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    assert summary.loc["regions_none", "status"] == "INCOMPLETE (folds 5/6, 1 failed)"
    assert summary.loc["full", "status"] == "complete"
    (failed,) = out.glob("trials/regions_none/1/*sub03")
    assert "MER_TEST_FAIL_ALWAYS" in (failed / "error.txt").read_text()
    assert json.loads((failed / "result.json").read_text())["status"] == "failed"
    kinds = [
        e["event"]
        for e in sweep["events"]
        if e["trial"].startswith("regions_none/") and e["trial"].endswith("sub03/s1")
    ]
    assert kinds == ["start", "error"] * 2  # first attempt + max_failures (1) retry


def test_retried_trial_resumes_from_its_checkpoint(sweep):
    ev = [
        e
        for e in sweep["events"]
        if e["trial"].startswith("full/") and e["trial"].endswith("sub02/s0")
    ]
    assert [e["event"] for e in ev] == ["start", "injected_failure", "error", "start", "end"]
    assert ev[0]["resumed_from"] is None and ev[1]["epoch"] == 1
    assert ev[3]["resumed_from"] == 1
    (folder,) = sweep["out"].glob("trials/full/0/*sub02")
    assert json.loads((folder / "result.json").read_text())["resumed_from"] == 1
    assert list(pd.read_csv(folder / "history.csv")["epoch"]) == [1, 2, 3]


def test_fractional_gpu_trials_run_four_at_a_time_on_cpu(sweep):
    ev = sweep["events"]
    starts = [e for e in ev if e["event"] == "start"]
    assert all(e["cuda_available"] is False and e["device"] == "cpu" for e in starts)
    assert all(e["ray_gpu_ids"] == ["0"] for e in starts)  # a share of the one (fake) GPU
    # how many trials were inside [start, end-or-error] at once
    points = [
        (e["time"], 1 if e["event"] == "start" else -1)
        for e in ev
        if e["event"] in ("start", "end", "error")
    ]
    level = peak = 0
    for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
        level += delta
        peak = max(peak, level)
    assert level == 0 and peak == 4


def test_wandb_offline_runs_per_trial_variant_and_sweep(sweep):
    out = sweep["out"]
    runs = offline_runs(out)
    trial_runs = [r for r in runs if "trial" in r["tags"]]
    assert len(trial_runs) == 11  # one per finished trial
    by_name = {r["name"]: r for r in runs}
    r = next(r for r in trial_runs if r["name"].startswith("full/"))
    assert r["group"] == "demo/full" and r["job_type"] == "full" and "oracle" in r["tags"]
    assert r["config"]["seed"] in (0, 1) and r["config"]["train.epochs"] == 3
    assert len([h["loss"] for h in r["history"] if "loss" in h]) == 3  # per-epoch curve
    assert "test/uf1" in r["summary"]
    assert by_name["full [oracle]"]["summary"]["pooled/uf1"] == pytest.approx(
        pd.read_csv(out / "summary.csv").set_index("variant").loc["full", "uf1_mean"]
    )
    none = by_name["regions_none"]
    assert none["summary"]["complete"] is False and "oracle" not in none["tags"]
    assert "demo summary" in by_name
    # the sweep summary run also carries the report's table and figures (mer report)
    logged = {k for h in by_name["demo summary"]["history"] for k in h}
    assert "report/ablation_table/_type" in logged
    assert {"report/variants/_type", "report/confusion_full/_type"} <= logged
    assert (out / "report" / "report.html").exists()
    for path in out.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_tune_state_holds_scalars_not_the_payloads(sweep):
    """Predictions and histories reach the results folder through the driver's inbox
    (mer.sweep.inbox), not Tune: Tune's experiment state holds none of their values (its trials
    report ids, final flags and payload tokens), and a trial filed in the results folder is not
    in it at all, so it grows with neither epochs, clips nor the study."""
    out = sweep["out"]
    state = max((out / "ray").rglob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    text = state.read_text()
    for word in ("prob_0", "sample_id", "val_uf1", "train_acc", "selected_epoch", "test_scores"):
        assert word not in text, word
    # the 11 filed trials are left out (mer.sweep.tunestate): Tune keeps the one it may retry
    trials = json.loads(text)["trial_data"]
    assert len(trials) == 1 and len(text) < 16_000
    ((record, meta),) = trials
    assert json.loads(record)["status"] == "ERROR"  # the trial that always fails
    assert not json.loads(meta)["last_result"].get("mer_final")
