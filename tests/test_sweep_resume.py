"""Kill the sweep driver mid-sweep (SIGKILL of its whole process group, Ray included), then
`--resume`: the sweep finishes and no finished trial trains again. Trials are counted through the
MER_TEST_TRIAL_EVENTS probe of tests/support/faults.py (one line per trial start / end)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")

from tests.conftest import tiny_overrides  # noqa: E402
from tests.support import faults  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _command(out: Path, cache: Path, *extra: str) -> list[str]:
    sets = tiny_overrides(cache) + [
        "ablations={full: {}}",
        "seeds=[0]",
        "data.synthetic.subjects=5",
        "train.epochs=2",
        "resources.max_concurrent=1",
    ]
    cmd = [
        sys.executable,
        str(REPO / "run_sweep.py"),
        str(REPO / "sweeps" / "demo.yaml"),
        "--out",
        str(out),
        "--wandb",
        "offline",
        "--num-cpus",
        "1",
    ]
    for s in sets:
        cmd += ["--set", s]
    return cmd + list(extra)


def _env(events: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(REPO), MER_TRIAL_HOOKS=faults.HOOKS)
    env.update(MER_TEST_TRIAL_EVENTS=str(events), MER_TEST_TRIAL_SLEEP="1.5")
    return env


def _resume(out: Path, cache: Path, events: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The same sweep with --resume, to its end."""
    return subprocess.run(
        _command(out, cache, "--resume"),
        cwd=cwd,
        env=_env(events),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _tune_state_trials(out: Path) -> list[str]:
    """Trial ids in the newest experiment state of the sweep's own Tune experiment (by the
    session time in the file name, as Tune's restore picks it)."""
    newest = max((out / "ray" / "tune").glob("experiment_state-*.json"), key=lambda p: p.name)
    records = json.loads(newest.read_text())["trial_data"]
    return [json.loads(record)["config"]["spec"] for record, _ in records]


def test_killed_driver_resumes_without_repeating_finished_trials(tmp_path):
    out, cache, events = tmp_path / "out", tmp_path / "cache", tmp_path / "events.jsonl"
    events.touch()
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115 - closed after the kill
    proc = subprocess.Popen(
        _command(out, cache),
        cwd=tmp_path,
        env=_env(events),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            done = list(out.glob("trials/*/*/*/result.json"))
            if len(done) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert len(list(out.glob("trials/*/*/*/result.json"))) >= 2
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
        log.close()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/*/*/result.json")}
    assert 2 <= len(before) < 5
    first_run = _events(events)

    second = _resume(out, cache, events, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "restoring the Tune experiment" in second.stderr  # Tuner.restore, not a fresh run
    assert "5/5" in second.stdout and "complete" in second.stdout

    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/*/*/result.json")}
    assert len(after) == 5
    assert all(after[k] == v for k, v in before.items())  # finished trials were not redone
    resumed = _events(events)[len(first_run) :]
    trained_again = {e["trial"] for e in resumed if e["event"] == "start"}
    finished_first = {e["trial"] for e in first_run if e["event"] == "end"}
    assert trained_again and not trained_again & finished_first
    ends = pd.Series([e["trial"] for e in _events(events) if e["event"] == "end"])
    assert ends.nunique() == 5 and (ends.value_counts() == 1).all()  # each trained to the end once
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "folds_done"] == 5 and summary.loc[0, "status"] == "complete"
    # every finished trial has its W&B run, also those the killed driver had not logged yet
    assert len(list(out.glob("trials/*/*/*/wandb.done"))) == 5
    assert len(list((out / "wandb").glob("offline-run-*"))) >= 5 + 2  # + variant + sweep runs

    # a finished trial's results deleted since: --resume runs that trial again, and only it.
    # Tune's state keeps one filed trial's record (its restore reads the session from it) and
    # leaves the others out (mer.sweep.tunestate): the lost trial is one it left out.
    kept = _tune_state_trials(out)
    assert len(kept) == 1
    lost = next(
        p.parent
        for p in sorted(out.glob("trials/*/*/*/result.json"))
        if json.loads(p.read_text())["trial"] not in kept
    )
    shutil.rmtree(lost)
    n_events = len(_events(events))
    third = _resume(out, cache, events, tmp_path)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "1 trial(s) the restored Tune experiment counts as finished have no results" in (
        third.stderr
    )
    assert "5/5" in third.stdout and "complete" in third.stdout
    rerun = {e["trial"] for e in _events(events)[n_events:] if e["event"] == "end"}
    assert len(rerun) == 1 and (lost / "result.json").exists()
    assert pd.read_csv(out / "summary.csv").loc[0, "folds_done"] == 5


def test_ctrl_c_stops_a_resumed_sweep_and_says_how_to_continue(tmp_path):
    """Tune returns normally after SIGINT: the driver must stop there (not rerun the trials the
    interruption left unfinished as if their results had been deleted)."""
    out, cache, events = tmp_path / "out", tmp_path / "cache", tmp_path / "events.jsonl"
    events.touch()
    proc = subprocess.Popen(
        _command(out, cache, "--resume"),  # a job script that always passes --resume
        cwd=tmp_path,
        env=_env(events),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if list(out.glob("trials/*/*/*/result.json")):
                break
            time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout[-2000:] + stderr[-3000:]
    assert "sweep interrupted" in stderr and "--resume" in stderr
    assert "running them again" not in stderr
    done = len(list(out.glob("trials/*/*/*/result.json")))
    assert 1 <= done < 5 and "INTERRUPTED" in stdout
    # W&B: the finished trials' runs, and no summary run of a variant that is only paused
    from tests.support.wandb_offline import offline_runs

    runs = offline_runs(out)
    headed = [r for r in runs if "tags" in r]
    assert headed and all("trial" in r["tags"] for r in headed), [r["name"] for r in headed]
    # a trial's live run the interruption stopped before W&B wrote its header: a trial run id
    # (sweep id - 12 hex digits of the trial id), never a variant's or the sweep's run
    sweep_ids = {r["id"].rsplit("-", 1)[0] for r in headed if "trial" in r["tags"]}
    for r in runs:
        if "tags" not in r:
            sweep_id, _, digest = r["folder"].rpartition("-")
            assert sweep_id in sweep_ids and re.fullmatch(r"[0-9a-f]{12}", digest), r["folder"]
