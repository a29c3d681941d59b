"""Results folder and W&B tracking without Ray: per-trial files, pooled metrics recomputed from the
prediction logs, INCOMPLETE marking, mean ± std over seeds, per-dataset parts, oracle tags,
offline W&B runs (group, config, summary, curves) and no API key anywhere."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mer.config import from_dict
from mer.experiment.environment import environment
from mer.experiment.plan import build_plan
from mer.experiment.store import ResultsStore, write_run_files
from mer.experiment.summary import write_summary
from mer.metrics import megc_scores
from mer.sweep.tracking import WandbTracker
from tests.support.wandb_offline import offline_runs

K = 3
NAMES = ["negative", "positive", "surprise"]


def _samples() -> pd.DataFrame:
    rows = []
    for ds, subjects in (("casme2", 3), ("samm", 2)):
        for s in range(subjects):
            for c in range(4):
                rows.append(
                    {
                        "sample_id": f"{ds}/p{s}/c{c}",
                        "dataset": ds,
                        "subject": f"{ds}/p{s}",
                        "clip": f"c{c}",
                        "label": (s + c) % 3,
                    }
                )
    return pd.DataFrame(rows)


def _plan(ablations=None):
    cfg = from_dict(
        {
            "name": "res",
            "data": {"dataset": "megc2019", "regions": {"policy": "au_oracle"}},
            "protocol": {"split": "megc2019"},
            "ablations": ablations or {"full": {}, "free": {"data.regions.policy": "fixed"}},
            "seeds": [0, 1],
        }
    )
    table = _samples()
    return build_plan(cfg, lambda d: (table, NAMES)), table


def _payload(spec, fold, table, rng, oracle):
    test = table.iloc[fold.test]
    pred = rng.integers(0, K, size=len(test))
    probs = np.eye(K)[pred] * 0.8 + 0.2 / K
    frame = pd.DataFrame(
        {
            "sample_id": test["sample_id"].to_numpy(),
            "dataset": test["dataset"].to_numpy(),
            "subject": test["subject"].to_numpy(),
            "clip": test["clip"].to_numpy(),
            "fold": fold.name,
            "split": "test",
            "true": test["label"].to_numpy(),
            "pred": pred,
            **{f"prob_{k}": probs[:, k] for k in range(K)},
            "oracle": oracle,
        }
    )
    history = [{"epoch": e, "loss": 1.0 / e, "lr": 1e-3, "val_uf1": 0.1 * e} for e in (1, 2, 3)]
    sc = megc_scores(frame["true"], frame["pred"], K)
    return {
        "mer_final": True,
        "trial": spec.id,
        "predictions": frame.to_dict(orient="list"),
        "history": history,
        "selected_epoch": 3,
        "test_scores": sc,
        "val_scores": None,
        "timings": {"total": 1.5},
        "params": 1234,
        "oracle": oracle,
        "training_iteration": 7,
        "config": {"spec": spec.id},
    }


def fill(out, *, seed: int = 0, failed_fold: int = 2, ablations=None):
    """A results folder of `_plan()` as the driver writes it: every trial filed, except fold
    `failed_fold` of variant `free`, seed 1, which failed; returns the plan and that trial.
    `ablations`: other variants than full (oracle) and free (label-free)."""
    plan, table = _plan(ablations)
    store = ResultsStore(out)
    rng = np.random.default_rng(seed)
    failed = plan.trials_of("free", 1)[failed_fold]
    for spec in plan.trials:
        if spec == failed:
            store.write_failure(spec, "Traceback ...\nRuntimeError: boom", attempts=3)
            continue
        store.write_trial(
            spec, _payload(spec, plan.fold(spec), table, rng, plan.variants[spec.variant].oracle)
        )
    write_run_files(out, plan, argv=["run_sweep.py", "x.yaml"])
    return plan, failed


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Every trial written, except one failed fold of variant `free`, seed 1."""
    out = tmp_path_factory.mktemp("res")
    plan, failed = fill(out)
    summary = write_summary(out, plan)
    return out, plan, summary, failed


def test_trial_files_follow_the_contract_layout(filled):
    out, plan, _, failed = filled
    spec = plan.trials[0]
    folder = out / "trials" / "full" / "0" / spec.fold_safe
    assert sorted(p.name for p in folder.iterdir()) == [
        "history.csv",
        "predictions.csv",
        "result.json",
    ]
    info = json.loads((folder / "result.json").read_text())
    assert info["status"] == "done" and info["trial"] == spec.id
    assert "training_iteration" not in info and "config" not in info  # Tune's keys dropped
    pred = pd.read_csv(folder / "predictions.csv")
    assert list(pred.columns[-2:]) == ["variant", "seed"] and set(pred["variant"]) == {"full"}
    assert list(pd.read_csv(folder / "history.csv")["epoch"]) == [1, 2, 3]
    bad = out / "trials" / failed.rel_dir
    assert json.loads((bad / "result.json").read_text())["status"] == "failed"
    assert "RuntimeError: boom" in (bad / "error.txt").read_text()
    for name in (
        "config.yaml",
        "plan.json",
        "environment.json",
        "predictions.csv",
        "summary.csv",
        "summary.md",
        "summary_seeds.csv",
    ):
        assert (out / name).exists(), name


def test_pooled_metrics_equal_a_recomputation_from_the_logs(filled):
    out, plan, _, _ = filled
    logs = pd.concat([pd.read_csv(p) for p in sorted(out.glob("trials/*/*/*/predictions.csv"))])
    seeds = pd.read_csv(out / "summary_seeds.csv")
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    for variant in ("full", "free"):
        per_seed = []
        for seed in (0, 1):
            rows = logs[(logs["variant"] == variant) & (logs["seed"] == seed)]
            want = megc_scores(rows["true"], rows["pred"], K)
            got = seeds[(seeds["variant"] == variant) & (seeds["seed"] == seed)].iloc[0]
            for m in ("uf1", "uar", "acc"):
                assert got[m] == pytest.approx(want[m])
            for ds in ("casme2", "samm"):  # per-dataset parts from the same pooled rows
                part = rows[rows["dataset"] == ds]
                assert got[f"{ds}/uf1"] == pytest.approx(
                    megc_scores(part["true"], part["pred"], K)["uf1"]
                )
            per_seed.append(want["uf1"])
        assert summary.loc[variant, "uf1_mean"] == pytest.approx(np.mean(per_seed))
        assert summary.loc[variant, "uf1_std"] == pytest.approx(np.std(per_seed, ddof=1))
    all_pred = pd.read_csv(out / "predictions.csv")
    assert len(all_pred) == len(logs)


def test_failed_fold_marks_its_variant_incomplete(filled):
    out, plan, summary, failed = filled
    table = summary.table.set_index("variant")
    n_folds = len(plan.variants["free"].folds[1])
    assert table.loc["free", "folds_done"] == 2 * n_folds - 1
    assert table.loc["free", "folds_failed"] == 1
    assert not table.loc["free", "complete"]
    assert table.loc["free", "status"] == (
        f"INCOMPLETE (folds {2 * n_folds - 1}/{2 * n_folds}, 1 failed)"
    )
    assert table.loc["full", "status"] == "complete"
    seed_row = next(r for r in summary.seeds if r["variant"] == "free" and r["seed"] == 1)
    assert not seed_row["complete"] and seed_row["failed_trials"] == failed.id
    md = (out / "summary.md").read_text()
    assert f"{n_folds - 1}/{n_folds}, INCOMPLETE" in md


def test_oracle_variant_tagged_in_name_column_and_markdown(filled):
    out, _, _, _ = filled
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    assert summary.loc["full", "name"] == "full [oracle]" and bool(summary.loc["full", "oracle"])
    assert summary.loc["free", "name"] == "free" and not bool(summary.loc["free", "oracle"])
    md = (out / "summary.md").read_text()
    assert "| full [oracle] |" in md and "**oracle**" in md
    assert "casme2 UF1" in md  # per-dataset parts of a composite run
    per_seed = md.split("## Per seed")[1].split("## Variants")[0]
    assert "| full [oracle] | 0 |" in per_seed and "| free | 0 |" in per_seed


def test_environment_has_versions_and_no_environment_values(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-1234567890")
    env = environment(["run_sweep.py"])
    assert env["versions"]["ray"] and env["versions"]["wandb"] and env["python"]
    assert "fake-key" not in json.dumps(env)


def test_wandb_offline_runs_hold_group_config_summary_and_curves(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0987654321abcdef")
    plan, table = _plan()
    rng = np.random.default_rng(1)
    tracker = WandbTracker(
        tmp_path, sweep="res", project="mer-test", entity=None, mode="offline", tags=["lab-a"]
    )
    spec = plan.trials_of("full", 0)[0]
    payload = _payload(spec, plan.fold(spec), table, rng, True)
    done = []
    tracker.trial(spec, plan.variants["full"].cfg, payload, True, on_done=lambda: done.append(1))
    store = ResultsStore(tmp_path)
    for s in plan.trials_of("full"):
        store.write_trial(s, _payload(s, plan.fold(s), table, rng, True))
    summary = write_summary(tmp_path, plan)
    row = summary.table.set_index("variant").loc["full"].to_dict() | {"variant": "full"}
    tracker.variant(
        plan,
        "full",
        row,
        [r for r in summary.seeds if r["variant"] == "full"],
        summary.predictions[summary.predictions["variant"] == "full"],
    )
    tracker.sweep(plan, summary.table)
    tracker.close()
    assert done == [1] and tracker.errors == []

    runs = {r["name"]: r for r in offline_runs(tmp_path)}
    assert set(runs) == {spec.id, "full [oracle]", "res summary"}
    trial = runs[spec.id]
    assert trial["group"] == "res/full" and trial["job_type"] == "full"
    assert "oracle" in trial["tags"]
    assert trial["config"]["variant"] == "full" and trial["config"]["fold"] == spec.fold
    assert trial["config"]["seed"] == 0 and trial["config"]["model.branches"] == "dual"
    assert trial["summary"]["test/uf1"] == pytest.approx(payload["test_scores"]["uf1"])
    curve = [h["loss"] for h in trial["history"] if "loss" in h]
    assert curve == pytest.approx([1.0, 0.5, 1 / 3])
    var = runs["full [oracle]"]
    assert var["group"] == "res/full" and "summary" in var["tags"] and "oracle" in var["tags"]
    assert var["summary"]["pooled/uf1"] == pytest.approx(row["uf1_mean"])
    assert var["summary"]["pooled/s1/uf1"] == pytest.approx(summary.seeds[1]["uf1"])
    assert "confusion_matrix_table/path" in var["summary"] or any(
        k.startswith("confusion_matrix") for k in var["summary"]
    )
    assert any(k.startswith("folds") for k in var["summary"])
    assert any(k.startswith("variants") for k in runs["res summary"]["summary"])
    sweep_run = runs["res summary"]
    assert "has-oracle" in sweep_run["tags"] and sweep_run["config"]["oracle_variants"] == ["full"]
    assert all("lab-a" in r["tags"] for r in runs.values())  # tracking.wandb.tags on every run
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"fake-key-0987654321abcdef" not in path.read_bytes(), path
