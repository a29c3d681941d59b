"""One benchmark size, run in this process as the sweep driver, timed from the inside.

Timers wrap the functions in TARGETS where they exist (a name missing from the code being
measured is skipped, so the same probe measures the code before and after a change): Tune's
experiment snapshots (`TuneController.save_to_dir`, which runs only when a snapshot is taken),
the driver's result callback, the pooling/summary work done per settled trial and at the end,
and the final report. A trial hook (`StartProbe`, carried to every trial through
MER_TRIAL_HOOKS) appends each trial's start time to a file, which gives the start-up to the first
trial. After the run: driver CPU (getrusage of this process: the event loop, its threads, the
W&B writer), peak RSS, Tune's experiment state, files and bytes in the results folder.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer.sweep.hooks import TrialHooks

EVENTS_ENV = "MER_BENCH_START_EVENTS"
HOOKS = "bench.scale.probe:StartProbe"

# (module, class or None, attribute, timer)
TARGETS = [
    ("ray.tune.execution.tune_controller", "TuneController", "save_to_dir", "snapshot"),
    ("mer.sweep.session", "Session", "on_result", "on_result"),
    ("mer.sweep.progress", "Progress", "track_trial", "pooling"),
    ("mer.sweep.progress", "Progress", "trial_failed", "pooling"),
    ("mer.sweep.session", None, "write_summary", "final_summary"),
    ("mer.sweep.session", "Session", "_write_report", "report"),
    ("mer.sweep.session", None, "prepare_datasets", "prepare"),
    ("mer.experiment.plan", None, "build_plan", "plan"),
    ("mer.sweep.session", None, "connect", "ray_start"),
]


class StartProbe(TrialHooks):
    """Appends `{"t": time, "trial": id}` to $MER_BENCH_START_EVENTS when a trial starts."""

    def __init__(self) -> None:
        self.path = os.environ.get(EVENTS_ENV)

    def on_start(self, spec: Any, info: Mapping[str, Any]) -> None:
        if self.path:
            line = json.dumps({"t": time.time(), "trial": spec.id}) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first: dict[str, float] = {}  # time.time() of a timer's first call
        self.wrapped: list[str] = []

    def wrap(self, module: str, cls: str | None, attr: str, timer: str) -> None:
        try:
            owner: Any = importlib.import_module(module)
        except ImportError:
            return
        if cls is not None:
            owner = getattr(owner, cls, None)
        fn = getattr(owner, attr, None) if owner is not None else None
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.first.setdefault(timer, time.time())
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[timer] = self.seconds.get(timer, 0.0) + time.perf_counter() - t0
                self.calls[timer] = self.calls.get(timer, 0) + 1

        setattr(owner, attr, timed)
        self.wrapped.append(f"{module}:{cls + '.' if cls else ''}{attr}")


def process_start_time(pid: int | str = "self") -> float:
    """time.time() at which process `pid` (default: this one) started (Linux /proc), so
    start-up includes imports. The kernel counts a process's start in clock ticks since boot;
    the boot time comes from /proc/uptime (10 ms), not /proc/stat's btime, which is whole
    seconds and put every start up to 1 s early (0.84 s on the box of session 7)."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    return boot + start / ticks


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            files += 1
            size += p.stat().st_size
    return files, size


class SnapshotSizes:
    """Bytes of each experiment state Tune writes (`TuneController.save_to_dir`): the largest
    is what one snapshot costs at the study's peak, which the final state (a finished sweep's
    Tune keeps little) does not show."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def wrap(self) -> None:
        try:
            from ray.tune.execution.tune_controller import TuneController
        except ImportError:
            return
        save = TuneController.save_to_dir

        @functools.wraps(save)
        def sized(controller: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return save(controller, *args, **kwargs)
            finally:
                with contextlib.suppress(OSError, AttributeError):
                    self.sizes.append(Path(controller.experiment_state_path).stat().st_size)

        TuneController.save_to_dir = sized


def tune_state_bytes(out: Path) -> int:
    """Bytes of the newest experiment_state-*.json of the sweep's Tune experiment."""
    states = sorted((out / "ray").rglob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    return states[-1].stat().st_size if states else 0


def run_one(argv: list[str], out: Path, events: Path) -> dict[str, Any]:
    """`mer sweep ARGV` in this process, timed; the measurements as one record."""
    started = process_start_time()
    timers = Timers()
    for target in TARGETS:
        timers.wrap(*target)
    snapshots = SnapshotSizes()
    snapshots.wrap()
    os.environ[EVENTS_ENV] = str(events)
    os.environ["MER_TRIAL_HOOKS"] = HOOKS
    events.unlink(missing_ok=True)
    from mer.cli import main

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.time()
    status = main(["sweep", *argv])
    wall = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    starts = [json.loads(x)["t"] for x in events.read_text().splitlines() if x.strip()]
    files, size = tree_size(out)
    wandb_files, wandb_bytes = tree_size(out / "wandb") if (out / "wandb").exists() else (0, 0)
    ray_files, ray_bytes = tree_size(out / "ray") if (out / "ray").exists() else (0, 0)
    return {
        "status": status,
        "wall_s": wall,
        "since_process_start_s": time.time() - started,
        "first_trial_s": (min(starts) - started) if starts else None,
        "trials_started": len(starts),
        "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "peak_rss_mb": ru1.ru_maxrss / 1024.0,
        "tune_state_bytes": tune_state_bytes(out),
        "snapshot_bytes": snapshots.sizes,
        "files": files,
        "bytes": size,
        "wandb_files": wandb_files,
        "wandb_bytes": wandb_bytes,
        "ray_files": ray_files,
        "ray_bytes": ray_bytes,
        "timers": timers.seconds,
        "calls": timers.calls,
        "first_call": {k: v - started for k, v in timers.first.items()},
        "wrapped": timers.wrapped,
    }


def run_resume(argv: list[str]) -> dict[str, Any]:
    """`mer sweep ARGV --resume` of a finished sweep: its wall time and whether Ray started."""
    started = process_start_time()
    from mer.cli import main

    t0 = time.time()
    status = main(["sweep", *argv, "--resume"])
    import sys

    return {
        "status": status,
        "wall_s": time.time() - t0,
        "since_process_start_s": time.time() - started,
        "ray_imported": "ray" in sys.modules,
    }
