"""Search mode end to end through the real trainable (mer.sweep.session Session → mer.train):
sweeps/demo_search.yaml shrunk to 5 subjects (2 held out), 2 configurations x 3 folds x 2 epochs
on synthetic data, then the hold-out evaluation (2 LOSO folds), interrupted (its trials fail) and
resumed without re-running any search trial."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
from optuna.trial import TrialState  # noqa: E402

from mer.config import load_config  # noqa: E402
from mer.metrics import megc_scores  # noqa: E402
from mer.sweep.search import (  # noqa: E402
    HOLDOUT_NOTE,
    FoldFanoutSearcher,
    holdout_dir,
    run_search,
    search_label,
)
from tests.support.faults import FaultHooks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path):
    return load_config(
        REPO / "sweeps" / "demo_search.yaml",
        [
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.synthetic.subjects=5",
            "data.synthetic.clips=6",
            "protocol.split=group_kfold:3",
            "train.epochs=2",
            "train.checkpoint_every=0",
            "search.trials=2",
            "search.concurrent_configs=2",
            "search.holdout_subjects=2",
            "resources.max_failures=0",
        ],
    )


def _trial_dirs(out):
    return sorted(p.relative_to(out) for p in (out / "trials").glob("*/*/*"))


def test_search_end_to_end_through_the_real_trainable(tmp_path, capsys, monkeypatch):
    from mer.sweep.options import RunOptions

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # Ray workers import mer from this checkout
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    # the hold-out evaluation's trials (ids "full/<subject>/s0") fail: an interrupted evaluation
    broken = FaultHooks(fail_always="full/*")
    opts = RunOptions(out=out, num_cpus=2, wandb="disabled", trial_hooks=broken)
    assert run_search(cfg, opts) == 1
    printed = capsys.readouterr().out
    assert "best configuration per variant" in printed and "INCOMPLETE: the hold-out" in printed
    plan = json.loads((out / "plan.json").read_text())
    held = plan["variants"]["full"]["holdout_subjects"]
    assert len(held) == 2

    study = FoldFanoutSearcher(cfg, ["kfold0", "kfold1", "kfold2"], out).study("full")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        # the value Optuna holds = pooled val UF1 of the runner's own prediction logs
        files = sorted(
            (out / "trials" / search_label("full", t.number)).glob("0/*/predictions.csv")
        )
        assert len(files) == 3
        pred = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        assert not set(pred["subject"]) & set(held)  # in no split of any search fold
        val = pred[pred["split"] == "val"]
        assert len(val) > 0
        assert t.values == [pytest.approx(megc_scores(val["true"], val["pred"], 3)["uf1"])]
        assert json.loads(t.user_attrs["overrides"]) == t.params
    best = json.loads((out / "search" / "best.json").read_text())["variants"]["full"]
    assert best["best"]["config_id"] == study.best_trial.number
    assert best["holdout"]["available"] is False
    assert "best_config_test_metrics" not in best

    # --resume: the finished search runs nothing new; the evaluation retries its failed folds
    search_dirs = _trial_dirs(out)
    assert len(search_dirs) == 6
    opts = RunOptions(out=out, num_cpus=2, wandb="disabled", resume=True, trial_hooks=FaultHooks())
    assert run_search(cfg, opts) == 0
    printed = capsys.readouterr().out
    assert len(study.get_trials()) == 2 and _trial_dirs(out) == search_dirs
    hdir = holdout_dir(cfg, out)
    hcfg = load_config(out / "search" / "holdout.yaml")
    assert hcfg.protocol.folds == held and hcfg.search is None
    hpred = pd.read_csv(hdir / "predictions.csv")
    assert sorted(hpred["fold"].unique()) == held and set(hpred["split"]) == {"test"}
    assert set(hpred["subject"]) == set(held)
    best = json.loads((out / "search" / "best.json").read_text())["variants"]["full"]
    res = best["holdout"]
    assert res["available"] and res["note"] == HOLDOUT_NOTE and res["n_test"] == len(hpred)
    assert res["uf1"] == pytest.approx(megc_scores(hpred["true"], hpred["pred"], 3)["uf1"])
    assert HOLDOUT_NOTE in printed and f"uf1 {res['uf1']:.4f}" in printed

    # the report ranks configurations by their inner-validation objective, never by test scores
    from mer.report import write_report
    from mer.report.data import load_run
    from mer.report.tables import confusion_for

    written = write_report(out, formats=("md",))
    table = pd.read_csv(written["csv"])
    assert sorted(table["variant"]) == [search_label("full", t.number) for t in trials]
    run = load_run(out)
    for t in trials:
        label = search_label("full", t.number)
        row = table[table["variant"] == label].iloc[0]
        assert row["uf1_mean"] == pytest.approx(t.values[0])
        n_val = ((run.predictions["variant"] == label) & (run.predictions["split"] == "val")).sum()
        assert confusion_for(run, label).sum() == n_val  # validation clips, not test ones
    assert {"png:optuna_history", "png:optuna_parallel"} <= set(written)
    md = written["md"].read_text()
    assert "held-out" in md and "test scores are not shown" in md
