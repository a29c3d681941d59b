"""Search mode end to end through the real trainable (mer.sweep.runner Session → mer.train):
sweeps/demo_search.yaml shrunk to 2 configurations x 3 folds x 2 epochs on synthetic data."""

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
    TEST_NOTE,
    FoldFanoutSearcher,
    run_search,
    search_label,
)

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
        ],
    )


def test_search_end_to_end_through_the_real_trainable(tmp_path, capsys, monkeypatch):
    from mer.sweep.runner import RunOptions

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # Ray workers import mer from this checkout
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    assert run_search(cfg, RunOptions(out=out, num_cpus=2, wandb="disabled")) == 0
    printed = capsys.readouterr().out
    assert "best configuration per variant" in printed and TEST_NOTE in printed

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
        val = pred[pred["split"] == "val"]
        assert len(val) > 0
        assert t.values == [pytest.approx(megc_scores(val["true"], val["pred"], 3)["uf1"])]
        assert json.loads(t.user_attrs["overrides"]) == t.params

    best = json.loads((out / "search" / "best.json").read_text())["variants"]["full"]
    assert best["best"]["config_id"] == study.best_trial.number
    label = search_label("full", study.best_trial.number)
    pred = pd.concat(
        [pd.read_csv(f) for f in sorted((out / "trials" / label).glob("0/*/predictions.csv"))]
    )
    test = pred[pred["split"] == "test"]
    metrics = best["best_config_test_metrics"]
    assert metrics["note"] == TEST_NOTE and metrics["n"] == len(test)
    assert metrics["uf1"] == pytest.approx(megc_scores(test["true"], test["pred"], 3)["uf1"])

    # --resume of a finished search: the same study, no new configurations or fold trials
    n_dirs = len(list((out / "trials").glob("*/*/*")))
    assert run_search(cfg, RunOptions(out=out, num_cpus=2, wandb="disabled", resume=True)) == 0
    assert len(study.get_trials()) == 2
    assert len(list((out / "trials").glob("*/*/*"))) == n_dirs == 6

    # the report ranks configurations by their inner-validation objective, never by test scores
    from mer.report import write_report

    written = write_report(out, formats=("md",))
    table = pd.read_csv(written["csv"])
    assert sorted(table["variant"]) == [search_label("full", t.number) for t in trials]
    for t in trials:
        row = table[table["variant"] == search_label("full", t.number)].iloc[0]
        assert row["uf1_mean"] == pytest.approx(t.values[0])
    assert {"png:optuna_history", "png:optuna_parallel"} <= set(written)
    assert "not used for selection" in written["md"].read_text()
