"""Fault and timing probes for the sweep tests, plugged into trials as mer.sweep.hooks.TrialHooks.

Why they exist: retry-from-checkpoint, permanent failures (INCOMPLETE variants), how many trials
Ray runs at once and what a resumed driver reruns can only be checked by making real trials fail,
wait or report, wherever Ray placed them. The probes are settings of a `FaultHooks` object made
in the driver and carried to every trial (so they work on any node):

- events=FILE: one JSON line per trial start / end / error (pid, node, timestamps, device, resumed
  epoch) and per injected failure; O_APPEND keeps each short line whole across processes;
- fail_once_dir=DIR: trials whose id matches `fail_match` (fnmatch, default `*`) raise once right
  after their first checkpoint (a marker in DIR remembers it), to exercise retry-from-checkpoint;
- fail_always=PATTERN: matching trials always fail at start;
- sleep_s=S: sleep S seconds at start;
- barrier=N: a trial waits at start until N trials have started (events file; at most 120 s), so
  a test can see how many trials Ray runs at once.

A test that runs the command line in a child process sets MER_TRIAL_HOOKS=`HOOKS` and the
environment variables `from_env` reads: MER_TEST_TRIAL_EVENTS, MER_TEST_FAIL_ONCE,
MER_TEST_FAIL_MATCH, MER_TEST_FAIL_ALWAYS, MER_TEST_TRIAL_SLEEP, MER_TEST_TRIAL_BARRIER.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer.experiment.plan import TrialSpec
from mer.sweep.hooks import TrialHooks
from mer.util.jsonio import dumps

log = logging.getLogger(__name__)

HOOKS = "tests.support.faults:from_env"  # the MER_TRIAL_HOOKS value that loads these probes


class InjectedFailure(RuntimeError):
    """Raised by the fail_once / fail_always probes."""


@dataclass(frozen=True)
class FaultHooks(TrialHooks):
    """Fault and timing probes (see the module docstring); all off by default."""

    events: str | None = None
    fail_once_dir: str | None = None
    fail_match: str = "*"
    fail_always: str | None = None
    sleep_s: float = 0.0
    barrier: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FaultHooks:
        env = dict(os.environ if env is None else env)
        hooks = cls(
            events=env.get("MER_TEST_TRIAL_EVENTS") or None,
            fail_once_dir=env.get("MER_TEST_FAIL_ONCE") or None,
            fail_match=env.get("MER_TEST_FAIL_MATCH") or "*",
            fail_always=env.get("MER_TEST_FAIL_ALWAYS") or None,
            sleep_s=float(env.get("MER_TEST_TRIAL_SLEEP") or 0.0),
            barrier=int(env.get("MER_TEST_TRIAL_BARRIER") or 0),
        )
        if hooks.active:  # a leftover variable must not silently slow or fail a real sweep
            names = sorted(k for k in env if k.startswith("MER_TEST_") and env[k])
            log.warning("test hooks active (%s): trials may sleep or fail on purpose", names)
        return hooks

    @property
    def active(self) -> bool:
        return (
            bool(self.events or self.fail_once_dir or self.fail_always)
            or self.sleep_s > 0
            or self.barrier > 0
        )

    def event(self, kind: str, spec: TrialSpec, **extra: Any) -> None:
        if not self.events:
            return
        rec = {"event": kind, "trial": spec.id, "time": time.time(), "pid": os.getpid(), **extra}
        with open(self.events, "a") as fh:  # O_APPEND: one short line per write stays whole
            fh.write(dumps(rec, indent=None) + "\n")

    def on_start(self, spec: TrialSpec, info: Mapping[str, Any]) -> None:
        self.event("start", spec, **info)
        if self.fail_always and fnmatch.fnmatchcase(spec.id, self.fail_always):
            raise InjectedFailure(f"MER_TEST_FAIL_ALWAYS: trial {spec.id} fails by request")
        if self.sleep_s > 0:
            time.sleep(self.sleep_s)
        if self.barrier and self.events:
            deadline = time.monotonic() + 120.0
            while self._starts() < self.barrier and time.monotonic() < deadline:
                time.sleep(0.05)

    def _starts(self) -> int:
        with open(self.events) as fh:
            return sum(1 for line in fh if '"event": "start"' in line)

    def after_checkpoint(self, spec: TrialSpec, epoch: int) -> None:
        if not self.fail_once_dir or not fnmatch.fnmatchcase(spec.id, self.fail_match):
            return
        marker = Path(self.fail_once_dir) / f"{spec.safe}.failed"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{epoch}\n")
        self.event("injected_failure", spec, epoch=epoch)
        raise InjectedFailure(f"MER_TEST_FAIL_ONCE: trial {spec.id} fails after epoch {epoch}")

    def on_end(self, spec: TrialSpec, info: Mapping[str, Any], error: BaseException | None) -> None:
        if error is not None:
            self.event("error", spec, error=repr(error)[:300])
        else:
            self.event("end", spec, **info)


def from_env() -> FaultHooks:
    """The MER_TRIAL_HOOKS factory: the probes the MER_TEST_* variables ask for."""
    return FaultHooks.from_env()
