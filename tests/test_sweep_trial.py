"""The debug path `run_sweep.py --trial`: the Tune trial's code in this process without Ray, its
files, and checkpoint resumption through the same reporter hooks (fail once, then --resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer.cli.sweep import main
from tests.conftest import tiny_overrides
from tests.support import faults
from tests.support.faults import InjectedFailure

REPO = Path(__file__).resolve().parents[1]


def _args(out: Path, cache: Path, trial: str, *extra: str) -> list[str]:
    args = [str(REPO / "sweeps" / "demo.yaml"), "--out", str(out), "--trial", trial]
    for s in tiny_overrides(cache):
        args += ["--set", s]
    return args + list(extra)


def test_trial_runs_in_process_without_ray(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    out = tmp_path / "out"
    assert main(_args(out, tmp_path / "cache", "full/sub02")) == 0
    assert not ray.is_initialized()
    printed = capsys.readouterr().out
    assert printed.startswith("full/casme2/sub02/s0 [oracle]: test uf1 ")
    folder = out / "debug" / "trials" / "full" / "0" / "casme2__sub02"
    info = json.loads((folder / "result.json").read_text())
    assert info["status"] == "done" and info["fold"] == "casme2/sub02" and info["oracle"] is True
    assert info["class_names"] == ["negative", "positive", "surprise"]  # megc3's classes 0, 1, 2
    pred = pd.read_csv(folder / "predictions.csv")
    assert set(pred["subject"]) == {"casme2/sub02"} and set(pred["split"]) == {"test"}
    assert list(pd.read_csv(folder / "history.csv")["epoch"]) == [1, 2, 3]
    assert (folder / "checkpoint" / "state.pt").exists()
    assert not (out / "summary.csv").exists()  # a debug trial is not a sweep result


def test_failed_trial_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    whole = tmp_path / "whole"
    assert main(_args(whole, cache, "regions_none/sub01")) == 0
    monkeypatch.setenv("MER_TRIAL_HOOKS", faults.HOOKS)
    monkeypatch.setenv("MER_TEST_FAIL_ONCE", str(tmp_path / "markers"))
    out = tmp_path / "out"
    with pytest.raises(InjectedFailure, match="after epoch 1"):
        main(_args(out, cache, "regions_none/sub01"))
    assert main(_args(out, cache, "regions_none/sub01", "--resume")) == 0  # marker: no 2nd fail
    rel = Path("debug/trials/regions_none/0/casme2__sub01")
    info = json.loads((out / rel / "result.json").read_text())
    assert info["resumed_from"] == 1
    a = pd.read_csv(whole / rel / "predictions.csv")
    b = pd.read_csv(out / rel / "predictions.csv")
    probs = [c for c in a.columns if c.startswith("prob_")]
    pd.testing.assert_frame_equal(a[probs], b[probs], rtol=1e-5)
    ha = pd.read_csv(whole / rel / "history.csv")
    hb = pd.read_csv(out / rel / "history.csv")
    assert list(hb["epoch"]) == [1, 2, 3]
    assert hb["loss"].tolist() == pytest.approx(ha["loss"].tolist(), rel=1e-5)


def test_unknown_trial_is_a_one_line_error(tmp_path, capsys):
    assert main(_args(tmp_path / "o", tmp_path / "cache", "nope/sub01")) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err


def test_test_hooks_are_off_by_default_and_warn_when_an_env_variable_turns_one_on(caplog):
    from tests.support.faults import FaultHooks

    with caplog.at_level("WARNING", logger="tests.support.faults"):
        assert not FaultHooks.from_env({"PATH": "/bin"}).active
        assert not caplog.records
        hooks = FaultHooks.from_env({"MER_TEST_TRIAL_SLEEP": "2"})
    assert hooks.active and hooks.sleep_s == 2.0
    assert "MER_TEST_TRIAL_SLEEP" in caplog.text and "fail on purpose" in caplog.text
