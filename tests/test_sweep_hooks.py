"""mer.sweep.hooks: the trial-hooks extension point (MER_TRIAL_HOOKS / RunOptions.trial_hooks),
what a trial calls and when, and the one-line errors of a bad MER_TRIAL_HOOKS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from mer.errors import ConfigError
from mer.sweep.hooks import NoTrialHooks, TrialHooks, load_trial_hooks
from mer.sweep.options import RunOptions
from tests.conftest import tiny_overrides
from tests.support.faults import FaultHooks

REPO = Path(__file__).resolve().parents[1]
calls: list[tuple[Any, ...]] = []


class Recorder(TrialHooks):
    """Records every call, in this process (the --trial path runs the trial here)."""

    def on_start(self, spec, info):  # noqa: ANN001
        calls.append(("start", spec.id, info["resumed_from"], info["device"], "node" in info))

    def after_checkpoint(self, spec, epoch):  # noqa: ANN001
        calls.append(("checkpoint", spec.id, epoch))

    def on_end(self, spec, info, error):  # noqa: ANN001
        calls.append(("end", spec.id, info["resumed_from"], info["started"] > 0, error))


class OnlyStart:
    def on_start(self, spec, info):  # noqa: ANN001
        pass


def test_no_variable_no_hooks(caplog):
    with caplog.at_level(logging.WARNING, logger="mer.sweep.hooks"):
        assert type(load_trial_hooks({})) is NoTrialHooks
        assert type(load_trial_hooks({"MER_TRIAL_HOOKS": "  "})) is NoTrialHooks
    assert not caplog.records
    hooks = NoTrialHooks()  # every moment is a no-op
    assert hooks.on_start(None, {}) is None and hooks.after_checkpoint(None, 1) is None
    assert hooks.on_end(None, {}, RuntimeError("x")) is None


def test_a_named_factory_is_called_and_announced(caplog, monkeypatch):
    monkeypatch.setenv("MER_TEST_TRIAL_SLEEP", "0.5")
    with caplog.at_level(logging.WARNING, logger="mer.sweep.hooks"):
        hooks = load_trial_hooks({"MER_TRIAL_HOOKS": "tests.support.faults:from_env"})
    assert hooks == FaultHooks(sleep_s=0.5)
    assert "trial hooks from MER_TRIAL_HOOKS=tests.support.faults:from_env" in caplog.text
    # a class works as well, and dotted attribute paths resolve
    assert load_trial_hooks({"MER_TRIAL_HOOKS": "tests.support.faults:FaultHooks"}) == (
        FaultHooks()
    )
    monkeypatch.setenv("MER_TRIAL_HOOKS", "tests.test_sweep_hooks:Recorder")
    assert type(RunOptions(out=Path("x")).trial_hooks) is Recorder  # the default reads it


@pytest.mark.parametrize(
    "value, message",
    [
        ("tests.support.faults", "expected package.module:factory"),
        (":from_env", "expected package.module:factory"),
        ("tests.support.nowhere:x", "cannot import it (No module named 'tests.support.nowhere')"),
        ("tests.support.faults:nothing", "cannot import it"),
        ("tests.test_sweep_hooks:OnlyStart", "OnlyStart has no after_checkpoint, on_end"),
    ],
)
def test_a_bad_variable_is_a_config_error(value, message):
    with pytest.raises(ConfigError) as err:
        load_trial_hooks({"MER_TRIAL_HOOKS": value})
    assert str(err.value).startswith(f"MER_TRIAL_HOOKS={value!r}: ")
    assert message in str(err.value)


def test_a_trial_calls_start_each_checkpoint_and_end_in_order(tmp_path, monkeypatch):
    from mer.cli.sweep import main

    calls.clear()
    monkeypatch.setenv("MER_TRIAL_HOOKS", "tests.test_sweep_hooks:Recorder")
    args = [str(REPO / "sweeps" / "demo.yaml"), "--out", str(tmp_path / "o")]
    args += ["--trial", "regions_none/sub01"]
    for s in tiny_overrides(tmp_path / "cache"):
        args += ["--set", s]
    assert main(args) == 0
    trial = "regions_none/casme2/sub01/s0"
    assert calls == [
        ("start", trial, None, "cpu", True),
        ("checkpoint", trial, 1),
        ("checkpoint", trial, 2),
        ("checkpoint", trial, 3),
        ("end", trial, None, True, None),
    ]


def test_a_bad_variable_stops_the_command_line_with_one_line(tmp_path, monkeypatch, capsys):
    from mer.cli.sweep import main

    monkeypatch.setenv("MER_TRIAL_HOOKS", "nope")
    args = [str(REPO / "sweeps" / "demo.yaml"), "--out", str(tmp_path / "o")]
    for s in tiny_overrides(tmp_path / "cache"):
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MER_TRIAL_HOOKS='nope': expected package.module:factory")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()
