"""SIGTERM takes the path of Ctrl-C (SIGINT): what batch schedulers and `kill` send must stop a
run as gracefully as a person at the terminal does.

Why: a sweep handles SIGINT well (Tune stops its trials, saves the experiment state, the driver
files what finished and exits 130 with the `--resume` hint), but SIGTERM (Slurm's scancel, a job's
time limit, `kill PID`) went to Python's default (or, once Ray was started, Ray's handler, which
exits from wherever the driver was) and the driver died with exit 134. `sigterm_as_interrupt`
makes SIGTERM call whatever handles SIGINT at that moment (Tune's handler during a run, else
Python's, which raises KeyboardInterrupt); the command then exits 143 (128 + SIGTERM) instead of
130. `ray.init` installs its own SIGTERM handler, so a command that starts Ray installs this one
again afterwards (`reinstall`).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

_state = {"installed": False, "terminated": False}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _state["terminated"] = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)  # e.g. Tune's: stop the trials, save the state, return
        return
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def sigterm_as_interrupt() -> None:
    """Make SIGTERM act as SIGINT in this process (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _state["installed"] = True


def reinstall() -> None:
    """After something replaced the SIGTERM handler (ray.init does), put ours back, if a command
    had installed it (library users who did not ask keep theirs)."""
    if _state["installed"]:
        sigterm_as_interrupt()


def terminated() -> bool:
    """Whether a SIGTERM arrived since this process installed the handler."""
    return bool(_state["terminated"])
