"""Who may write a cache folder: one preparer per key (a file lock where the file system has
them), leftovers of a killed preparer, and the atomic rename that publishes a finished cache.

A cache is built in `{cache_dir}/.{key}.building-XXXX` and renamed to `{cache_dir}/{key}` when
complete, so a reader sees a whole cache or none; a writer that loses the race (no lock on this
file system) discards its copy and uses the winner's. The per-clip results a build keeps as it
goes (mer.data.clipstore) live elsewhere and survive a killed build.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCKS = ".locks"
MANIFEST = "manifest.json"


def lock_path(root: Path, key: str) -> Path:
    return root / LOCKS / f"{key}.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Exclusive kernel lock on `path` (`filelock`: flock on POSIX, msvcrt on Windows), so it ends
    with its process however that process ends; yields whether it holds (False also when
    `blocking` is off and another process holds it, or the file system has no locks: then the
    atomic rename of a finished cache is what keeps readers safe)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=-1 if blocking else 0)
        locked = True
    except Timeout:
        locked = False
    except (NotImplementedError, OSError) as exc:  # e.g. a file system without locks
        log.debug("no file lock on %s (%s); relying on atomic rename", path, exc)
        locked = False
    try:
        yield locked
    finally:
        if locked:
            with contextlib.suppress(OSError):
                lock.release()


def building_folders(root: Path, key: str = "*") -> list[Path]:
    """Temporary build folders (of `key`, or of every key)."""
    return sorted(root.glob(f".{key}.building-*"))


def remove_stale(root: Path, key: str) -> None:
    """Temporary folders of this key left by a killed preparer (we hold the key's lock)."""
    for stale in building_folders(root, key):
        log.info("removing %s, left by an interrupted prepare", stale)
        shutil.rmtree(stale, ignore_errors=True)


def publish(tmp: Path, target: Path) -> bool:
    """Rename the finished `tmp` to `target`; False when another process published it first
    (its copy is used, ours discarded by the caller)."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not (target / MANIFEST).is_file():
            raise
        log.info("another process prepared %s first; using it", target)
        return False
    return True
