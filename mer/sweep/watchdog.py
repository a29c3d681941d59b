"""Stop the local Ray a driver started when the driver dies without stopping it (SIGKILL, the OOM
killer, a node's job cleanup that kills only the driver).

Why: Ray ties its GCS server and raylet to the driver that started them (they get SIGKILL when it
dies) and its workers to the raylet, but its dashboard and runtime-env agents notice the raylet's
death late and then wait for the dead GCS: measured on Ray 2.60 they lingered about 60 s after a
SIGKILLed driver (and so did their ports and memory), long enough to collide with the `--resume`
a job script starts next. This watchdog is a small process of its own (its own session, so the
driver's terminal signals do not reach it) started by `start` right after `ray.init`: it follows
the Ray processes that ray.init started and their descendants (workers, agents), by pid and start
time; once the driver is gone it sends them SIGTERM, then SIGKILL to what is left after a grace
period. It ends on its own when those processes are gone (`ray.shutdown`). Linux only (/proc).

    python -m mer.sweep.watchdog DRIVER_PID DRIVER_START PID:START [PID:START ...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 3.0

Table = dict[int, tuple[int, int]]  # pid -> (parent pid, start time in clock ticks)


def process_table() -> Table:
    """Every process's parent and start time, from /proc (empty where there is none)."""
    table: Table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # a zombie is dead already
                table[int(name)] = (int(fields[1]), int(fields[19]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def children(pid: int, table: Table | None = None) -> dict[int, int]:
    """Direct children of `pid`: {pid: start time}."""
    table = process_table() if table is None else table
    return {p: start for p, (ppid, start) in table.items() if ppid == pid}


def _follow(guarded: dict[int, int], table: Table) -> dict[int, int]:
    """The guarded processes still alive (same pid, same start time) and their descendants."""
    alive = {p: s for p, s in guarded.items() if table.get(p, (0, -1))[1] == s}
    grew = True
    while grew:
        new = {p: s for p, (pp, s) in table.items() if pp in alive and p not in alive}
        alive.update(new)
        grew = bool(new)
    return alive


def _stop(guarded: dict[int, int]) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 1.0)):
        table = process_table()
        left = _follow(guarded, table)
        left.pop(os.getpid(), None)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            table = process_table()
            left = {p: s for p, s in left.items() if table.get(p, (0, -1))[1] == s}
        if not left:
            return


def watch(driver: int, driver_start: int, guarded: dict[int, int]) -> None:
    """Until the guarded processes are gone: if the driver dies first, stop them."""
    while True:
        table = process_table()
        guarded = _follow(guarded, table)
        if not guarded:
            return  # ray.shutdown() stopped them
        if table.get(driver, (0, -1))[1] != driver_start:
            _stop(guarded)
            return
        time.sleep(POLL_S)


def start(driver_pid: int, ray_pids: dict[int, int]) -> subprocess.Popen | None:
    """Start the watchdog for `ray_pids` ({pid: start time}, what ray.init started); None where
    it cannot work (no /proc) or there is nothing to guard."""
    table = process_table()
    if driver_pid not in table or not ray_pids:
        return None
    args = [str(driver_pid), str(table[driver_pid][1])]
    args += [f"{pid}:{st}" for pid, st in sorted(ray_pids.items())]
    root = str(Path(__file__).resolve().parents[2])  # this checkout's mer, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-m", "mer.sweep.watchdog", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def main(argv: list[str]) -> int:
    driver, driver_start = int(argv[0]), int(argv[1])
    guarded = {int(p): int(s) for p, s in (a.split(":") for a in argv[2:])}
    watch(driver, driver_start, guarded)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
