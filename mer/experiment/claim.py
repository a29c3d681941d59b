"""Claiming a results folder: one mer writer at a time, and a record of what a sweep may delete.

Why: two sweeps started on one `--out` used to both run, their trials mixed under one
config.yaml, and `--overwrite` deleted whatever carried a sweep's entry names (a user's
`report/thesis.tex`). So every mer command that writes into a results folder (a sweep or search,
`mer train --out`, `mer report` writing inside the folder) first takes the folder's lock, before
any data is read or Ray started; a second writer is refused and told who holds it. The lock is a
kernel file lock (`filelock`), so it ends with its process however that process ends; the holder
record beside it (pid, host, command, start time) only says who it was, and a record left by a
process that died is taken over with a message.

A sweep also writes, first, the list of entries it may write there (`owned.json`): names that did
not exist when a sweep first claimed the folder. `--overwrite` deletes those and nothing else.

    OUT/.mer/lock         the lock file (its content means nothing)
    OUT/.mer/holder.json  who holds the lock now (removed when released)
    OUT/.mer/owned.json   the entries a sweep created here (what --overwrite may delete)
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mer.errors import ConfigError, DataError
from mer.experiment import layout
from mer.util.jsonio import read_json, write_json

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
HOLDER_FILE = "holder.json"
OWNED_FILE = "owned.json"
OWNED_FORMAT = 1
# how long a refused run waits for the lock's holder to write who it is (it does so right after
# taking the lock: milliseconds, unless two runs started together on a loaded machine)
HOLDER_WAIT_S = 3.0


def _proc_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the
    pid it names one process, even after the pid is reused. None where /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a results folder's lock: enough for a person to find the process."""

    kind: str  # sweep | search | train | report
    pid: int
    host: str
    command: str
    started: str  # local time, readable
    proc_start: int | None = None  # _proc_start(pid) when it took the lock

    @classmethod
    def me(cls, kind: str, command: Sequence[str] | None) -> Holder:
        argv = list(sys.argv if command is None else command)
        return cls(
            kind=kind,
            pid=os.getpid(),
            host=socket.gethostname(),
            command=shlex.join(argv) if argv else "?",
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
            proc_start=_proc_start(os.getpid()),
        )

    def describe(self) -> str:
        return (
            f"a {self.kind} (pid {self.pid} on {self.host}, started {self.started}: {self.command})"
        )

    def running(self) -> bool | None:
        """Whether the process still runs: None when it ran on another host (unknown)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process with that pid
            pass
        start = _proc_start(self.pid)
        return start is None or self.proc_start is None or start == self.proc_start


def _read_holder(folder: Path) -> Holder | None:
    path = folder / layout.CLAIM_DIR / HOLDER_FILE
    try:
        raw = read_json(path, what="the holder of the results folder's lock")
        return Holder(**{k: raw[k] for k in Holder.__dataclass_fields__ if k in raw})
    except (DataError, TypeError, KeyError):  # missing, half-written or foreign: unknown
        return None


def _wait_for_holder(folder: Path, timeout_s: float = HOLDER_WAIT_S) -> Holder | None:
    """The holder of a lock just found taken: two runs started together find the lock taken a
    moment before its holder wrote who it is, and the refusal should name it."""
    deadline = time.monotonic() + timeout_s
    while True:
        holder = _read_holder(folder)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.05)


class FolderClaim:
    """This process's hold on a results folder; `release()` (or process exit) ends it."""

    def __init__(self, folder: Path, lock: FileLock, holder: Holder):
        self.folder = folder
        self.holder = holder
        self._lock = lock
        self._count = 1

    def release(self) -> None:
        self._count -= 1
        if self._count > 0 or not self._lock.is_locked:
            return
        _HELD.pop(self.folder, None)
        held = _read_holder(self.folder)
        if held is not None and held.pid == os.getpid():
            (self.folder / layout.CLAIM_DIR / HOLDER_FILE).unlink(missing_ok=True)
        self._lock.release(force=True)

    def __enter__(self) -> FolderClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


_HELD: dict[Path, FolderClaim] = {}


@atexit.register
def _release_all() -> None:
    for held in list(_HELD.values()):
        held._count = 1
        held.release()


def claim(folder: str | Path, kind: str, *, command: Sequence[str] | None = None) -> FolderClaim:
    """Take `folder`'s lock for this process (creating the folder), or ConfigError naming who
    holds it. Re-entrant within a process (a search claims its folder, its report writer runs
    inside). A holder record left by a process that is gone is taken over with a warning."""
    folder = Path(folder).expanduser().resolve()
    held = _HELD.get(folder)
    if held is not None:
        held._count += 1
        return held
    claim_dir = folder / layout.CLAIM_DIR
    try:
        claim_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot create the results folder ({exc})") from None
    lock = FileLock(str(claim_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _wait_for_holder(folder)
        who = holder.describe() if holder else "another mer process (it has not said which yet)"
        raise ConfigError(
            f"{folder} is in use by {who}; two runs writing one results folder would mix their "
            "results: wait for it to end (or stop it), or use another --out"
        ) from None
    except OSError as exc:
        where = claim_dir / LOCK_FILE
        raise ConfigError(f"{where}: cannot lock the results folder ({exc})") from None
    me = Holder.me(kind, command)
    previous = _read_holder(folder)
    if previous is not None and previous.pid != me.pid:
        if previous.running():
            lock.release(force=True)
            raise ConfigError(
                f"{folder} is in use by {previous.describe()}, which still runs although its "
                f"lock file ({claim_dir / LOCK_FILE}) was replaced; wait for it to end or stop it"
            )
        log.warning(
            "%s: taking over the lock left by %s, which is no longer running%s",
            folder, previous.describe(),
            "" if previous.running() is False else " (it ran on another host; its lock is free)",
        )  # fmt: skip
    try:
        write_json(claim_dir / HOLDER_FILE, asdict(me))
    except OSError as exc:
        lock.release(force=True)
        raise ConfigError(f"{claim_dir / HOLDER_FILE}: cannot write ({exc})") from None
    found = FolderClaim(folder, lock, me)
    _HELD[folder] = found
    return found


def claim_if_inside(
    folder: str | Path, dest: str | Path, kind: str, *, command: Sequence[str] | None = None
) -> FolderClaim | None:
    """Claim `folder` when `dest` (what a command writes) lies inside it; None otherwise (a
    report written elsewhere only reads the folder, which a running sweep may hold)."""
    folder = Path(folder).expanduser().resolve()
    dest = Path(dest).expanduser().resolve()
    if not folder.is_dir() or (dest != folder and folder not in dest.parents):
        return None  # a missing folder is the reader's error to report, not ours to create
    return claim(folder, kind, command=command)


def holder(folder: str | Path) -> Holder | None:
    """Who holds `folder`'s lock now, as its holder record says (None: nobody said)."""
    return _read_holder(Path(folder).expanduser().resolve())


# ---------------------------------------------------------------------------- owned entries
def owned_entries(folder: str | Path) -> set[str] | None:
    """The entries a sweep recorded as its own in `folder`; None when it has no record (a folder
    written by an older mer, by `mer train`, or by hand)."""
    path = Path(folder) / layout.CLAIM_DIR / OWNED_FILE
    if not path.exists():
        return None
    raw = read_json(path, what="the entries a sweep wrote in this folder")
    entries = raw.get("entries") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise DataError(f"{path}: expected {{'entries': [names]}}; delete it to start over")
    return set(entries)


def record_owned(folder: str | Path, names: Iterable[str]) -> set[str]:
    """Add the names among `names` that do not exist in `folder` yet to its owned entries (the
    record is written before the sweep writes any of them); returns the owned entries."""
    folder = Path(folder)
    before = owned_entries(folder)
    owned = set(before or ())
    owned |= {n for n in names if not (folder / n).exists() and not (folder / n).is_symlink()}
    if before is None or owned != before:
        write_json(
            folder / layout.CLAIM_DIR / OWNED_FILE,
            {"format": OWNED_FORMAT, "entries": sorted(owned)},
        )
    return owned
