"""What a person sees while a sweep runs (mer.sweep.console, mer.sweep.estimate): the start line,
elapsed time and ETA per finished trial, the heartbeat, the command that continues an interrupted
sweep, and the Ray/Tune messages dropped from a successful run's console."""

from __future__ import annotations

import logging

import pytest

from mer.sweep import console
from mer.sweep.console import SweepConsole, fmt_duration, quiet_ray, resume_command


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_eta_from_the_trials_finished_in_this_run():
    clock = Clock()
    c = SweepConsole(total=10, done_before=4, clock=clock)
    clock.now += 30
    assert c.trial_done(5) == "30 s elapsed, ETA 2:30"  # 5 left at 30 s each
    clock.now += 30
    assert c.trial_done(6) == "1:00 elapsed, ETA 2:00"  # 4 left at 30 s each
    clock.now += 3600
    assert c.trial_done(10) == "1:01:00 elapsed, all done"
    search = SweepConsole(total=None, clock=clock)
    assert search.trial_done(1) == "0 s elapsed"  # a search's trial count is open: no ETA


def test_start_line_says_trials_concurrency_estimate_and_where_results_go():
    c = SweepConsole(total=36, done_before=6)
    line = c.start_line("demo", 30, 2, "1 CPU", (150.0, "a timed step"), "results/demo/report")
    assert line == (
        "demo: 30 trial(s) to run (6 finished before), up to 2 at a time (1 CPU each); "
        "estimated 2:30 (from a timed step); results in results/demo/report; "
        "Ctrl-C stops, --resume continues"
    )
    assert "estimated" not in c.start_line("demo", 30, 2, "1 CPU", None, "x")


def test_heartbeat_only_after_a_silent_minute(caplog):
    clock = Clock()
    c = SweepConsole(total=4, clock=clock)
    with caplog.at_level(logging.INFO, logger="mer.sweep.console"):
        clock.now += 59
        c.heartbeat(running=2)
        assert not caplog.records
        clock.now += 1
        c.heartbeat(running=2)
        c.heartbeat(running=2)  # not again at once
        clock.now += 120
        c.heartbeat(running=0)  # nothing running: nothing to say
    assert [r.getMessage() for r in caplog.records] == [
        "2 trial(s) running, 1:00 elapsed; each trial reports when it ends"
    ]


@pytest.mark.parametrize(
    "argv, command",
    [
        (["run_sweep.py", "sweeps/demo.yaml", "--out", "/tmp/a b"],
         "python run_sweep.py sweeps/demo.yaml --out '/tmp/a b' --resume"),
        (["/x/.venv/bin/mer", "sweep", "sweeps/demo.yaml", "--overwrite"],
         "mer sweep sweeps/demo.yaml --resume"),
        (["sweep", "sweeps/demo.yaml", "--resume"], "mer sweep sweeps/demo.yaml --resume"),
        (["sweeps/demo.yaml"], "python run_sweep.py sweeps/demo.yaml --resume"),
        (None, "the same command plus --resume"),
    ],
)  # fmt: skip
def test_the_command_that_continues_an_interrupted_sweep(argv, command):
    assert resume_command(argv) == command


def test_ray_and_tune_chatter_is_dropped_and_the_rest_kept(monkeypatch):
    for key in console.RAY_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TUNE_WARN_THRESHOLD_S", "3")  # a user's own setting wins
    quiet_ray()
    quiet_ray()  # idempotent: one filter per logger
    import os

    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0" and os.environ["TUNE_WARN_THRESHOLD_S"] == "3"
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    messages = {
        "ray._private.authentication.authentication_token_setup": [
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled",
            "Token authentication is disabled for this Ray cluster. Anyone with network access",
        ],
        "ray.tune.tune": [
            "Experiment has been interrupted, but the most recent state was saved.\nResume "
            'experiment with: Tuner.restore(path="/x/ray/tune", trainable=...)',
            "Wrote the latest version of all result files and experiment state to '/x/ray/tune'",
            "Trial full/sub01 errored after 3 iterations",
        ],
        "ray.tune.utils.util": [
            "The `process_trial_result` operation took 0.7 s, which may be a performance "
            "bottleneck."
        ],
    }
    handler = Keep()
    for name, texts in messages.items():
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        monkeypatch.setattr(logger, "propagate", False)
        try:
            for text in texts:
                logger.warning(text)
        finally:
            logger.removeHandler(handler)
        assert sum(isinstance(f, console._Drop) for f in logger.filters) == 1
    assert seen == [  # a disabled token auth is worth a warning; an errored trial always is
        "Token authentication is disabled for this Ray cluster. Anyone with network access",
        "Trial full/sub01 errored after 3 iterations",
    ]


@pytest.mark.parametrize(
    "seconds, text", [(None, "?"), (0.4, "0 s"), (59.6, "1:00"), (3725, "1:02:05")]
)
def test_durations_read_at_a_glance(seconds, text):
    assert fmt_duration(seconds) == text
