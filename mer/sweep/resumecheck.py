"""What `--resume` unpickles is checked first: a pickle runs code when it is loaded.

Why: `Tuner.restore` unpickles Tune's state from the results folder (tuner.pkl, the experiment
state with the trials' pickled configs, the search algorithm's and the searcher's checkpoints):
a pickle planted there runs as the user who resumes. So before restoring, every such file, and
each folder from the results folder (or `--storage`) down to it, must be owned by this user (or
root) and writable by nobody else; and where the sweep's last driver run ended in order (finished
or interrupted through Ctrl-C / SIGTERM), every pickle must still have the SHA-256 digest that run
recorded when it ended (OUT/.mer/state.json), and no new one may have appeared. After a driver
that was killed (or one from an older mer) there are no digests to compare: only owner and
permissions are checked, and the log says so. A storage that is not a local path (s3://...)
cannot be checked at all: it must be trusted (README, "Running on a cluster").
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import stat
from pathlib import Path

from mer.errors import ConfigError, DataError
from mer.experiment import layout
from mer.util.jsonio import read_json, write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.json"  # in OUT/.mer/
# What Tune (and the searcher) pickle into an experiment folder: tuner.pkl, searcher-state-*.pkl,
# the trials' params.pkl, and JSON files that embed pickles (the experiment state, the search
# algorithm's and the variant generator's state).
_PICKLED_JSON = ("experiment_state", "search_gen_state", "basic-variant-state")


def pickled_files(exp_dir: Path) -> list[Path]:
    """Every file under a Tune experiment folder that restoring it unpickles."""
    found = []
    for p in sorted(exp_dir.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        if p.suffix == ".pkl" or (p.suffix == ".json" and p.name.startswith(_PICKLED_JSON)):
            found.append(p)
    return found


def _who(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_shared(gid: int) -> str | None:
    """The group's name when users other than this one may be in it; None for a private group."""
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return f"gid {gid}"
    me = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() != 0 else "root"
    if gid == os.getegid() and set(group.gr_mem) <= {me}:
        return None
    return group.gr_name


def untrusted(path: Path) -> str | None:
    """Why `path` may hold what someone else wrote (None: only this user or root could)."""
    st = path.lstat()
    if st.st_uid not in (os.geteuid(), 0):
        return f"is owned by {_who(st.st_uid)}, not by you"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    shared_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX  # like /tmp
    if st.st_mode & stat.S_IWOTH and not shared_dir:
        return "is writable by every user"
    if st.st_mode & stat.S_IWGRP and not shared_dir:
        group = _group_shared(st.st_gid)
        if group is not None:
            return f"is writable by group {group}"
    return None


def _chain(top: Path, path: Path) -> list[Path]:
    """`top`, the folders between it and `path`, and `path`."""
    rel = path.relative_to(top)
    return [top] + [top.joinpath(*rel.parts[: i + 1]) for i in range(len(rel.parts))]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(out: Path, exp_dir: Path) -> str:
    """The experiment's key in the state record: relative to OUT when inside it (so a moved
    results folder keeps its record), else absolute."""
    try:
        return exp_dir.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(exp_dir.resolve())


def _record(out: Path) -> dict:
    path = out / layout.CLAIM_DIR / STATE_FILE
    if not path.exists():
        return {}
    try:
        raw = read_json(path, what="digests of the Tune state a sweep run left")
    except DataError as exc:
        raise ConfigError(f"--resume: {exc}; it is recorded by mer, was it edited?") from None
    return raw if isinstance(raw, dict) else {}


def check_before_restore(out: Path, exp_path: str, storage_root: str) -> None:
    """ConfigError unless the Tune state at `exp_path` (a local path, or a URI that cannot be
    checked) may be unpickled: see the module docstring."""
    if "://" in exp_path:
        log.warning(
            "--resume: the Tune state at %s is not on a local path; mer cannot check who wrote it "
            "and unpickles it as it is (the storage must be trusted)",
            exp_path,
        )
        return
    exp_dir = Path(exp_path)
    top = Path(storage_root)
    files = pickled_files(exp_dir)
    checked = [out, *_chain(top, exp_dir)] + [p for f in files for p in _chain(exp_dir, f)[1:]]
    for path in dict.fromkeys(checked):
        why = untrusted(path)
        if why is not None:
            raise ConfigError(
                f"--resume: {path} {why}; resuming unpickles the Tune state there, and a pickle "
                "runs code, so it must be writable by you alone (chmod go-w, or chown); the "
                "results folder and --storage must be trusted"
            )
    entry = _record(out).get(_key(out, exp_dir))
    if not isinstance(entry, dict) or not entry.get("ended"):
        log.info(
            "--resume: the last run of this sweep did not end in order (killed) or was written "
            "by an older mer: its Tune state (%d pickled file(s)) is checked for owner and "
            "permissions only, not against digests",
            len(files),
        )
        return
    digests = entry.get("files") or {}
    for f in files:
        rel = f.relative_to(exp_dir).as_posix()
        if rel not in digests:
            raise ConfigError(
                f"--resume: {f} appeared after the sweep's last run ended (it recorded the digest "
                f"of every pickled file then, in {out / layout.CLAIM_DIR / STATE_FILE}); "
                "resuming would unpickle it. Remove it if you did not put it there"
            )
        if _digest(f) != digests[rel]:
            raise ConfigError(
                f"--resume: {f} changed after the sweep's last run ended (its SHA-256 differs "
                f"from the one recorded in {out / layout.CLAIM_DIR / STATE_FILE}); resuming "
                "would unpickle it"
            )


def record_state(out: Path, exp_path: str, *, ended: bool) -> None:
    """Record the digests of the Tune state a driver run leaves (`ended`: Tune returned, the
    state is final), or, at a run's start (`ended` False), that the state is about to change."""
    if "://" in exp_path:
        return
    exp_dir = Path(exp_path)
    record = _record(out)
    entry: dict = {"ended": bool(ended)}
    if ended and exp_dir.is_dir():
        entry["files"] = {
            f.relative_to(exp_dir).as_posix(): _digest(f) for f in pickled_files(exp_dir)
        }
    record[_key(out, exp_dir)] = entry
    write_json(out / layout.CLAIM_DIR / STATE_FILE, record)
