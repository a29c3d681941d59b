"""What a cache dir holds, who used it, and what can go (`mer cache list|clean`).

Each prepared dataset is a folder `{cache_dir}/{key}`; changing a source file or a data setting
builds a new one beside it and the old one stays. `{cache_dir}/.usage/{key}.json` records when
a cache was last used and by whom (the sweep folder, or the config `mer prepare` was given), so
the listing can say which sweeps rest on it.

`clean` removes, by default, what nothing will read again: caches superseded by a newer cache of
the same data settings (the same data key: rebuilt after a source changed), incomplete cache
folders and temporary folders of killed builds. `older_than` (days) also removes caches not used
for that long and per-clip results of unfinished builds (mer.data.clipstore) not touched for that
long (younger ones are what the next prepare continues from); `keys` removes the entries named.
A cache whose key is locked (being built) is never touched. The generated synthetic datasets and
the landmark cache (which saves face detection) are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mer.config import config_hash
from mer.data.budget import fmt_bytes
from mer.data.clipstore import FOLDER as CLIPS
from mer.data.locking import LOCKS, MANIFEST, building_folders, file_lock, lock_path
from mer.util.jsonio import write_json

log = logging.getLogger(__name__)

USAGE = ".usage"
KEY = re.compile(r"[0-9a-f]{16}")  # a cache folder's name (mer.data.keys.cache_key)
KEEP_USERS = 20  # users remembered per cache (the most recent)
DAY = 86400.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def record_use(root: Path, key: str, used_by: str | None) -> None:
    """Note that the cache `key` was used now (by `used_by`, when known)."""
    path = Path(root) / USAGE / f"{key}.json"
    try:
        body = json.loads(path.read_text())
        users = dict(body.get("users") or {})
    except (OSError, ValueError):
        users = {}
    now = _now()
    if used_by:
        users[used_by] = now
        users = dict(sorted(users.items(), key=lambda kv: kv[1])[-KEEP_USERS:])
    try:
        write_json(path, {"key": key, "last_used": now, "users": users})
    except OSError as exc:  # only the listing's information is lost
        log.debug("%s: cannot record the cache's use (%s)", path, exc)


@dataclass
class CacheInfo:
    """One entry of a cache dir."""

    key: str
    path: Path
    bytes: int
    kind: str  # "cache", "incomplete", "building", "clips"
    dataset: str = ""
    data_key: str = ""  # mer.sweep.plan.data_key_of of its data settings
    clips: int | None = None
    created: str = ""
    last_used: str = ""
    users: dict[str, str] = field(default_factory=dict)
    stale: str = ""  # why clean removes it by default ("" = it is kept)
    note: str = ""

    def used_epoch(self) -> float:
        stamp = self.last_used or self.created
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return self.path.stat().st_mtime if self.path.exists() else 0.0

    def recency(self) -> tuple[float, int]:
        """Last use, then when its folder was written (uses within one clock tick)."""
        try:
            written = self.path.stat().st_mtime_ns
        except OSError:
            written = 0
        return self.used_epoch(), written


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
    return total


def _cache_entry(path: Path, root: Path) -> CacheInfo:
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        return CacheInfo(
            path.name, path, _size(path), "incomplete", stale="incomplete (no manifest)"
        )
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return CacheInfo(path.name, path, _size(path), "incomplete", stale="unreadable manifest")
    data = manifest.get("data") or {}
    dataset = str(data.get("dataset", ""))
    if dataset == "synthetic":
        dataset += f" ({(data.get('synthetic') or {}).get('layout', '?')})"
    info = CacheInfo(
        key=path.name,
        path=path,
        bytes=_size(path),
        kind="cache",
        dataset=dataset,
        data_key=config_hash(manifest.get("key_config") or {}, 12),
        clips=(manifest.get("counts") or {}).get("clips"),
        created=str(manifest.get("created", "")),
    )
    with contextlib.suppress(OSError, ValueError):
        usage = json.loads((root / USAGE / f"{path.name}.json").read_text())
        info.last_used = str(usage.get("last_used", ""))
        info.users = dict(usage.get("users") or {})
    return info


def list_caches(root: str | Path) -> list[CacheInfo]:
    """Every cache of `root` (oldest use first), then leftovers of builds."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    caches = [
        _cache_entry(p, root)
        for p in sorted(root.iterdir())
        if p.is_dir() and KEY.fullmatch(p.name)  # anything else here is not ours to list
    ]
    newest: dict[str, CacheInfo] = {}
    for c in caches:
        if c.kind == "cache" and (
            c.data_key not in newest or c.recency() > newest[c.data_key].recency()
        ):
            newest[c.data_key] = c
    for c in caches:
        if c.kind == "cache" and newest[c.data_key] is not c:
            c.stale = f"superseded by {newest[c.data_key].key} (same data settings, rebuilt)"
    caches.sort(key=lambda c: c.recency())
    leftovers = [
        CacheInfo(p.name, p, _size(p), "building", stale="left by an interrupted prepare")
        for p in building_folders(root)
    ]
    clip_root = root / CLIPS
    if clip_root.is_dir():
        note = "per-clip results of an unfinished build; its next prepare continues from them"
        leftovers += [
            CacheInfo(p.name, p, _size(p), "clips", note=note)
            for p in sorted(clip_root.iterdir())
            if p.is_dir()
        ]
    return caches + leftovers


def _lock_key(entry: CacheInfo) -> str:
    if entry.kind == "building":
        return entry.key[1:].split(".building-")[0]
    return entry.key


def clean(
    root: str | Path,
    *,
    older_than: float | None = None,
    keys: Iterable[str] = (),
    dry_run: bool = False,
) -> tuple[list[CacheInfo], list[tuple[CacheInfo, str]]]:
    """Remove what the module doc says; returns (removed, kept with the reason they were not
    removed although asked for). `dry_run`: remove nothing, say what would go."""
    root = Path(root).expanduser()
    named = set(keys)
    removed: list[CacheInfo] = []
    skipped: list[tuple[CacheInfo, str]] = []
    cutoff = None if older_than is None else time.time() - older_than * DAY
    entries = list_caches(root)
    unknown = named - {e.key for e in entries}
    for key in sorted(unknown):
        skipped.append((CacheInfo(key, root / key, 0, "cache"), "no such cache"))
    for entry in entries:
        why = entry.stale
        if entry.key in named:
            why = why or "named"
        elif (
            not why
            and cutoff is not None
            and entry.kind in ("cache", "clips")
            and entry.used_epoch() < cutoff
        ):
            why = f"not used for {older_than:g} days"
        if not why:
            continue
        if entry.kind == "clips":
            busy = _clips_busy(root, entry.path)
        else:
            busy = not _try_lock(root, _lock_key(entry))
        if busy:
            skipped.append((entry, "in use: a prepare holds its lock"))
            continue
        entry.stale = why
        if not dry_run:
            _remove(entry, root)
        removed.append(entry)
    return removed, skipped


def _try_lock(root: Path, key: str) -> bool:
    path = lock_path(root, key)
    if not path.exists():
        return True
    with file_lock(path, blocking=False) as held:
        return held


def _clips_busy(root: Path, folder: Path) -> bool:
    """Per-clip results are in use while any key's lock is held (a build is running)."""
    locks = root / LOCKS
    if not locks.is_dir():
        return False
    for path in locks.glob("*.lock"):
        if path.stem.startswith("synthetic-"):
            continue
        with file_lock(path, blocking=False) as held:
            if not held:
                return True
    return False


def _remove(entry: CacheInfo, root: Path) -> None:
    if entry.path.is_dir():
        shutil.rmtree(entry.path)
    elif entry.path.exists():
        entry.path.unlink()
    if entry.kind in ("cache", "incomplete"):
        with contextlib.suppress(OSError):
            (root / USAGE / f"{entry.key}.json").unlink()


def describe(entries: list[CacheInfo], root: Path) -> list[str]:
    """The listing as text lines (newest use last)."""
    if not entries:
        return [f"{root}: no prepared data"]
    lines = []
    for e in entries:
        if e.kind != "cache":
            lines.append(f"{e.key}  {e.kind}  {fmt_bytes(e.bytes)}  ({e.stale or e.note})")
            continue
        used = e.last_used or f"{e.created} (built; no use recorded)"
        users = ", ".join(e.users) or "no sweep recorded"
        stale = f"  [stale: {e.stale}]" if e.stale else ""
        lines.append(
            f"{e.key}  {e.dataset}  data {e.data_key}  {e.clips} clips  {fmt_bytes(e.bytes)}  "
            f"last used {used}  used by: {users}{stale}"
        )
    total = sum(e.bytes for e in entries)
    lines.append(f"{len(entries)} entries, {fmt_bytes(total)} in {root}")
    return lines


def as_json(entries: list[CacheInfo]) -> list[dict[str, Any]]:
    return [
        {
            "key": e.key, "kind": e.kind, "path": str(e.path), "bytes": e.bytes,
            "dataset": e.dataset, "data_key": e.data_key, "clips": e.clips, "created": e.created,
            "last_used": e.last_used, "users": e.users, "stale": e.stale,
        }
        for e in entries
    ]  # fmt: skip
