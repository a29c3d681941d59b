"""Tune's events into the driver's Session, and how Tune names and places trial folders.

These objects are pickled into Tune's experiment state (tuner.pkl: the callback, the trial
folder-name function) and unpickled on `--resume`, so they hold no state: they forward to the
Session of the current driver process, registered by `Session.run` (`active_session`).
`mer.sweep.session` and `mer.sweep.runner` re-export them under the names older state pickled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs
from ray import tune

from mer.experiment import layout

if TYPE_CHECKING:  # the session imports this module, never the other way round at run time
    from mer.sweep.session import Session

log = logging.getLogger(__name__)

# The Tune callback is pickled into the experiment state (tuner.pkl) and unpickled on restore,
# so it carries no state of its own: it forwards to the session registered here by
# `Session.run`, which is the fresh one of the current driver process.
_ACTIVE: dict[str, Session] = {}


def active_session() -> Session | None:
    """The Session whose Tune run is in progress in this process (None outside `Session.run`):
    what objects Tune unpickled (the callback, a restored searcher) must work for."""
    return _ACTIVE.get("session")


class SweepCallback(tune.Callback):
    """Forwards Tune events to the active Session (stateless, so it pickles and restores)."""

    def setup(self, **info):  # noqa: ANN003
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_tune_setup()

    def on_step_begin(self, iteration, trials, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None and s.console is not None:
            s.console.heartbeat(sum(1 for t in trials if t.status == "RUNNING"))

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_result(trial.config, result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_complete(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_recover(trial.config, trial)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_error(trial.config, trial)


def _trial_error(trial: Any) -> str:
    """The failed trial's error text: Tune writes it to the trial's local (driver) folder first
    and syncs it to storage later, so read it there."""
    local = trial.error_file
    if local and Path(local).exists():
        return Path(local).read_text()
    return str(trial.get_error() or "unknown error (Tune kept no error file)")


def _checkpoint_deleted(trial: Any) -> bool:
    """The trial's latest Tune checkpoint is gone from storage (on_complete deletes a finished
    trial's checkpoints; Tune's state may still point at them after a driver was killed)."""
    try:
        ckpt = trial.checkpoint
        if ckpt is None:
            return False
        return ckpt.filesystem.get_file_info(ckpt.path).type == pafs.FileType.NotFound
    except Exception:  # noqa: BLE001 - unknown: treated as a real failure
        return False


def trial_name(trial: Any) -> str:
    c = trial.config
    if "spec" in c:
        return str(c["spec"])
    return layout.trial_id(c.get("label") or c["variant"], c["fold"], c["seed"])


def trial_dirname(trial: Any) -> str:
    _follow_current_storage(trial)  # Tune calls this as it creates a trial: the moment to fix it
    return layout.fold_safe(trial_name(trial)) + f"-{trial.trial_id}"


def _follow_current_storage(trial: Any) -> None:
    """A trial Tune creates after a restore takes its storage from the search algorithm's
    pickled experiment, i.e. the folder of the sweep's FIRST run (Tune rebases only the trials it
    restores): after the results folder moved, its files and checkpoints would go to the old
    place. Point it at the experiment this run uses."""
    session = _ACTIVE.get("session")
    storage = getattr(trial, "storage", None)
    where = getattr(session, "tune_location", None)
    if storage is None or where is None or "://" in where[0]:
        return
    path, name = Path(where[0]).as_posix(), where[1]
    if (storage.storage_fs_path, storage.experiment_dir_name) != (path, name):
        log.debug(
            "trial %s: storage %s/%s -> %s/%s (the results folder moved since the first run)",
            getattr(trial, "trial_id", "?"), storage.storage_fs_path, storage.experiment_dir_name,
            path, name,
        )  # fmt: skip
        storage.storage_fs_path = path
        storage.experiment_dir_name = name
