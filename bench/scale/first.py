"""Start-up to the first trial as a user sees it: a plain `python -m mer sweep` process, nothing
imported or wrapped ahead of it, timed from the moment the kernel started it (/proc) to the
first trial's start (the StartProbe trial hook), then stopped with Ctrl-C (SIGINT).

Why not the probe's own figure: `probe.run_one` imports Tune and the session module to wrap
their functions before the sweep starts, which delays the driver's early Ray start; this run
has none of that. The data and model-statistics caches are warm (the parent warmed them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.scale.probe import EVENTS_ENV, HOOKS, process_start_time

REPO = Path(__file__).resolve().parents[2]


def first_trial_once(argv: list[str], events: Path, log: Path, timeout_s: float = 180.0) -> float:
    """Seconds from process start to the first trial's start of `mer sweep ARGV`."""
    events.unlink(missing_ok=True)
    env = dict(os.environ, MER_TRIAL_HOOKS=HOOKS, **{EVENTS_ENV: str(events)})
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mer", "sweep", *argv],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        started = process_start_time(proc.pid)
        deadline = time.time() + timeout_s
        first = None
        while time.time() < deadline and proc.poll() is None:
            if events.exists() and events.stat().st_size:
                first = min(json.loads(x)["t"] for x in events.read_text().splitlines() if x)
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the sweep stops its trials and Ray
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if first is None:
        raise SystemExit(f"no trial started within {timeout_s:.0f} s; see {log}")
    return first - started


def first_trial(argv: list[str], work: Path, runs: int) -> dict[str, float | list[float]]:
    """`runs` plain start-ups (each into a fresh results folder): their seconds and median."""
    seconds = []
    for i in range(runs):
        out = work / f"first-{i}"
        argv_i = [*argv]
        argv_i[argv_i.index("--out") + 1] = str(out)
        log = work / f"first-{i}.log"
        seconds.append(first_trial_once(argv_i, work / "first-starts.jsonl", log))
        shutil.rmtree(out, ignore_errors=True)
        time.sleep(2)  # let the stopped run's Ray processes go before the next start
    return {"runs": seconds, "median": statistics.median(seconds)}
