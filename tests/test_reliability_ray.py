"""Faults on a real local Ray through the real command line (issue 17): two sweeps started on one
results folder, SIGTERM to the driver (then a planted pickle, then --resume), a killed trial,
and what a SIGKILLed driver leaves running. Demo-sized data: 3 to 5 synthetic subjects, 2 epochs.
The checks without Ray are in test_reliability.py."""

from __future__ import annotations

import json
import os
import pickle
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


def _command(out: Path, cache: Path, *extra: str, subjects: int = 3, epochs: int = 2) -> list:
    sets = tiny_overrides(cache) + [
        "ablations={full: {}}",
        "seeds=[0]",
        f"data.synthetic.subjects={subjects}",
        f"train.epochs={epochs}",
        "resources.max_concurrent=1",
    ]
    cmd = [sys.executable, str(REPO / "run_sweep.py"), str(REPO / "sweeps" / "demo.yaml")]
    cmd += ["--out", str(out), "--wandb", "disabled", "--num-cpus", "1"]
    for s in sets:
        cmd += ["--set", s]
    return cmd + list(extra)


def _env(events: Path, sleep: float = 0.0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MER_TEST_"))}
    env.update(PYTHONPATH=str(REPO), MER_TRIAL_HOOKS=faults.HOOKS)
    env.update(MER_TEST_TRIAL_EVENTS=str(events), MER_TEST_TRIAL_SLEEP=str(sleep))
    return env


def _events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not predicate():
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before the moment the test waits for"
    assert predicate(), "timed out"


def _tune_trials(out: Path) -> list[tuple[dict, dict, int]]:
    """(record, runtime metadata, bytes) of each trial in the newest Tune state of each of the
    sweep's Tune experiments (a --resume may add one for trials the restored one will not run
    again; a restored one writes a new state file next to the old, with the same mtime)."""
    newest: dict[Path, Path] = {}  # by the session time in the name, as Tune's restore picks
    for state in (out / "ray").rglob("experiment_state-*.json"):
        if state.parent not in newest or state.name > newest[state.parent].name:
            newest[state.parent] = state
    trials = [t for state in newest.values() for t in json.loads(state.read_text())["trial_data"]]
    return [(json.loads(a), json.loads(b), len(a) + len(b)) for a, b in trials]


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_two_sweeps_started_on_one_folder_leave_one_sweeps_results(tmp_path):
    """Started together with different configs (2 and 3 epochs): one runs, the other is refused
    at once naming it; every filed trial and config.yaml are the winner's. Both used to run and
    mix their trials under one config.yaml."""
    out, events = tmp_path / "out", tmp_path / "events.jsonl"
    events.touch()
    procs = {
        epochs: subprocess.Popen(
            _command(out, tmp_path / f"cache{epochs}", epochs=epochs),
            cwd=tmp_path,
            env=_env(events),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for epochs in (2, 3)
    }
    try:
        done = {e: p.communicate(timeout=400) for e, p in procs.items()}
    finally:
        for p in procs.values():
            _kill_group(p)
    codes = {e: p.returncode for e, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], {e: d[1][-2000:] for e, d in done.items()}
    winner = next(e for e, c in codes.items() if c == 0)
    loser = 5 - winner
    err = done[loser][1]
    assert f"is in use by a sweep (pid {procs[winner].pid} on " in err, err[-2000:]
    assert "Traceback" not in err
    histories = [pd.read_csv(p) for p in out.glob("trials/*/*/*/history.csv")]
    assert len(histories) == 3
    assert all(list(h["epoch"]) == list(range(1, winner + 1)) for h in histories)
    assert f"epochs: {winner}" in (out / "config.yaml").read_text()
    assert not (tmp_path / f"cache{loser}").exists()  # refused before preparing any data


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.getcwd()}/PLANTED_RAN",))


def test_sigterm_stops_the_sweep_as_ctrl_c_does_and_resume_checks_what_it_unpickles(tmp_path):
    """SIGTERM (what batch schedulers send) to the driver: trials stop, Tune's state is saved,
    exit 143 with the resume hint, and no Ray process of the driver is left. Then a pickle
    planted in the results folder is refused by --resume (it used to run), and the untouched
    folder resumes to the end without rerunning a finished trial."""
    out, cache, events = tmp_path / "out", tmp_path / "cache", tmp_path / "events.jsonl"
    events.touch()
    proc = subprocess.Popen(
        _command(out, cache, subjects=5),
        cwd=tmp_path,
        env=_env(events, sleep=1.5),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(list(out.glob("trials/*/*/*/result.json"))) >= 1, proc)
        proc.send_signal(signal.SIGTERM)  # the driver alone, as `kill PID` does
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-3000:]
    assert "terminated (SIGTERM)" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert "INTERRUPTED" in stdout
    filed = {p.parent: p.stat().st_mtime_ns for p in out.glob("trials/*/*/*/result.json")}
    assert 1 <= len(filed) < 5
    state = json.loads((out / ".mer" / "state.json").read_text())["ray/tune"]
    assert state["ended"] and "tuner.pkl" in state["files"]  # digests of what it left
    first_run = _events(events)
    # Tune's state: the trials whose results were filed are left out (mer.sweep.tunestate), the
    # interrupted ones keep their statistics and checkpoint for --resume
    saved = _tune_trials(out)
    assert not [md for _, md, _ in saved if md["last_result"].get("mer_final")]
    stopped = [md for rec, md, _ in saved if not md["last_result"].get("mer_final")]
    assert stopped and all(md["metric_analysis"] for md in stopped if md["last_result"])

    # a pickle planted after the run ended: --resume refuses before unpickling anything
    tuner = out / "ray" / "tune" / "tuner.pkl"
    original = tuner.read_bytes()
    tuner.write_bytes(pickle.dumps(_Planted()))
    resume = _command(out, cache, "--resume", subjects=5)
    planted = subprocess.run(
        resume, cwd=tmp_path, env=_env(events), capture_output=True, text=True, timeout=300
    )
    assert planted.returncode == 2, planted.stderr[-3000:]
    assert "tuner.pkl changed after the sweep's last run ended" in planted.stderr
    assert not (tmp_path / "PLANTED_RAN").exists()

    tuner.write_bytes(original)
    second = subprocess.run(
        resume, cwd=tmp_path, env=_env(events), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "restoring the Tune experiment" in second.stderr and "5/5" in second.stdout
    after = {p.parent: p.stat().st_mtime_ns for p in out.glob("trials/*/*/*/result.json")}
    assert len(after) == 5 and all(after[k] == v for k, v in filed.items())
    finished_first = {e["trial"] for e in first_run if e["event"] == "end"}
    trained_again = {e["trial"] for e in _events(events)[len(first_run) :] if e["event"] == "start"}
    assert trained_again and not trained_again & finished_first
    # every trial finished and filed: Tune's state keeps the one trimmed record its restore
    # needs, a few KB whatever the study's size and epochs (issue 19)
    left = _tune_trials(out)
    assert len(left) == 1, [md["last_result"] for _, md, _ in left]
    ((_, md, size),) = left
    assert md["last_result"].get("mer_final") and md["metric_analysis"] == {} and size < 5_000


def test_a_killed_trial_is_retried_and_the_sweep_completes(tmp_path):
    """SIGKILL of a trial's worker process: Tune retries the trial, nothing is lost."""
    out, cache, events = tmp_path / "out", tmp_path / "cache", tmp_path / "events.jsonl"
    events.touch()
    proc = subprocess.Popen(
        _command(out, cache),
        cwd=tmp_path,
        env=_env(events, sleep=4.0),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: any(e["event"] == "start" for e in _events(events)), proc)
        victim = next(e for e in _events(events) if e["event"] == "start")
        os.kill(victim["pid"], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    starts = [e["trial"] for e in _events(events) if e["event"] == "start"]
    assert starts.count(victim["trial"]) == 2  # killed once, retried once
    ends = [e["trial"] for e in _events(events) if e["event"] == "end"]
    assert sorted(ends) == sorted(set(starts)) and len(ends) == 3
    assert len(list(out.glob("trials/*/*/*/result.json"))) == 3
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "status"] == "complete" and summary.loc[0, "folds_done"] == 3


DRIVER = """
import json, os, subprocess, sys, time
import ray
from mer.sweep.cluster import connect
from tests.support.processes import descendants

connect(None, num_cpus=1)

@ray.remote
def work():
    time.sleep(600)

ref = work.remote()  # a worker process, as a trial has
time.sleep(3)
mine = descendants(os.getpid())
listen = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
ours = [l for l in listen if any(f"pid={p}," in l for p in mine) or f"pid={os.getpid()}," in l]
bound = sorted({l.split()[3].rsplit(":", 1)[0] for l in ours})
print(json.dumps({"pids": mine, "bound": bound}), flush=True)
time.sleep(600)
"""


def test_a_local_ray_listens_on_localhost_only_and_dies_with_its_driver(tmp_path):
    """A local start binds 127.0.0.1 (it used to listen on every interface), and SIGKILL of the
    driver alone leaves no Ray process behind for long (its agents used to linger ~60 s)."""
    from tests.support.processes import process_table

    if not process_table() or subprocess.run(["ss", "-V"], capture_output=True).returncode:
        pytest.skip("needs /proc and ss")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        info = json.loads(driver.stdout.readline())
        pids = {int(p): s for p, s in info["pids"].items()}
        assert len(pids) >= 4  # GCS, raylet, agents, the worker (and the watchdog)
        driver.kill()  # the driver alone (not its process group), as the OOM killer does
        driver.wait()
        t0 = time.monotonic()
        left = pids
        while left and time.monotonic() - t0 < 30:
            time.sleep(0.2)
            table = process_table()
            left = {p: s for p, s in pids.items() if table.get(p, (0, -1))[1] == s}
        lingered = time.monotonic() - t0
        print(f"Ray processes of a SIGKILLed driver gone after {lingered:.1f} s")
        print(f"Ray of the driver listened on {info['bound']}")
        assert info["bound"] and set(info["bound"]) <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}
        assert not left, f"{len(left)} Ray process(es) still running {lingered:.0f} s later"
        assert lingered < 15
    finally:
        _kill_group(driver)
        for p, s in locals().get("left", {}).items():
            if process_table().get(p, (0, -1))[1] == s:
                os.kill(p, signal.SIGKILL)
