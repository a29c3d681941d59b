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


class StopSignals:
    """Whether a stop signal (SIGINT, SIGUSR1; SIGTERM reaches the SIGINT handler, see above)
    arrived while watched.

    Why: Tune returns normally when a signal stops it, exactly as when every trial ended, and
    its experiment state no longer holds the trials mer filed (mer.sweep.tunestate), so a resumed
    run cannot tell "interrupted" from "done" by counting Tune's trials. `watch` wraps the
    handlers installed at that moment (Tune's, once its run has set them up) so that they note
    the signal and then do what they did; `unwatch` puts back those still wrapped."""

    WATCHED = (signal.SIGINT, signal.SIGUSR1)

    def __init__(self) -> None:
        self.seen = False
        self._wrapped: dict[int, object] = {}

    def watch(self) -> None:
        """Wrap the current callable handlers of SIGINT and SIGUSR1 (main thread only; a default
        or ignored disposition is left alone, so watching never changes what a signal does)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.WATCHED:
            current = signal.getsignal(sig)
            if not callable(current) or getattr(current, "__self__", None) is self:
                continue
            self._wrapped[sig] = current
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        inner = self._wrapped.get(signum)
        if callable(inner):
            inner(signum, frame)

    def unwatch(self) -> None:
        """Put back the handlers this wrapped where the wrapper is still installed (Tune's SIGINT
        handler replaces itself, and so the wrapper, after its first signal)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, inner in self._wrapped.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, inner)  # type: ignore[arg-type]
        self._wrapped.clear()
