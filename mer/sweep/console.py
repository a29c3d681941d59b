"""What a person sees while a sweep runs: one line when the trials start (how many, how many at
once, an estimate, where the report will be), one per finished trial with the elapsed time and an
ETA, a line when nothing has ended for a while, and none of Ray's and Tune's chatter that mer
says better or that needs no action.

What is filtered, and why (each one seen in a successful demo run):
- Ray's "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt
  out": a local Ray that mer starts uses token authentication, the safe default (only processes
  holding this user's token can join it); there is nothing to do about it.
- Tune's configuration box and "View detailed results here: OUT/ray/tune": Tune's internal state
  is not where results are; mer names the results folder and report instead (the legacy
  reporter at verbose=0, RAY_AIR_NEW_OUTPUT=0, prints neither).
- Tune's "Resume experiment with: Tuner.restore(...)" after Ctrl-C: a mer sweep continues with
  its own command plus --resume, which mer prints.
- Tune's "Wrote the latest version of all result files and experiment state to 'OUT/ray/tune'":
  again Tune's internal folder; mer prints where the results and the report are.
- Tune's "The `process_trial_result` operation took 0.7 s, which may be a performance
  bottleneck": filing a finished trial's logs on the driver takes that long by design.
- "Exception ignored in ... SystemExit: 1" from Ray workers: see `quiet_worker_exit`.
Everything else from Ray (errors, a trial's traceback, autoscaler news) still shows.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def fmt_duration(seconds: float | None) -> str:
    """`1:05:09`, `4:07` or `12 s`: what a person reads at a glance."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


# set before Ray/Tune are imported (Tune reads them at import time); a user's own values win
RAY_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_THRESHOLD_S": "10",
}
# logger name -> texts whose records are dropped
DROPPED = {
    "ray._private.authentication.authentication_token_setup": (
        "Token authentication is enabled for this Ray cluster",
    ),
    "ray.tune.tune": (
        "Resume experiment with",
        "Resume training with",
        "Wrote the latest version of all result files",
    ),
    "ray.tune.utils.util": ("may be a performance bottleneck",),
}
HEARTBEAT_S = 60.0  # a line when no trial has ended for this long


class _Drop(logging.Filter):
    def __init__(self, texts: tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(t in message for t in self.texts)


def quiet_ray() -> None:
    """Before Ray is imported: Ray/Tune settings and log filters for a readable console."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    for name, texts in DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(texts))


class SweepConsole:
    """The start line, per-trial elapsed time and ETA, and the heartbeat of one Tune run."""

    def __init__(
        self,
        total: int | None,
        done_before: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = total  # trials of the plan (None: a search, whose count is open)
        self.done_before = done_before
        self.clock = clock
        self.started = clock()
        self.done_here = 0
        self.last_line = self.started

    def start_line(
        self,
        name: str,
        to_run: int | None,
        concurrency: int,
        per_trial: str,
        estimate: tuple[float | None, str] | None,
        report: str,
    ) -> str:
        """'demo: 36 trial(s) to run, up to 2 at a time (1 CPU each); estimate 2:30 (...)'."""
        what = f"{to_run} trial(s) to run" if to_run is not None else "search trials"
        if self.done_before:
            what += f" ({self.done_before} finished before)"
        text = f"{name}: {what}, up to {concurrency} at a time ({per_trial} each)"
        if estimate is not None and estimate[0] is not None:
            text += f"; estimated {fmt_duration(estimate[0])} (from {estimate[1]})"
        return text + f"; results in {report}; Ctrl-C stops, --resume continues"

    def trial_done(self, n_done: int) -> str:
        """', 0:42 elapsed, ETA 3:10': after the n_done-th finished trial of the plan."""
        now = self.clock()
        self.done_here += 1
        self.last_line = now
        elapsed = now - self.started
        text = f"{fmt_duration(elapsed)} elapsed"
        if self.total is not None:
            left = max(self.total - n_done, 0)
            eta = elapsed / self.done_here * left if left else 0.0
            text += f", ETA {fmt_duration(eta)}" if left else ", all done"
        return text

    def heartbeat(self, running: int) -> None:
        """A line when no trial has ended for HEARTBEAT_S: the sweep is alive."""
        now = self.clock()
        if running and now - self.last_line >= HEARTBEAT_S:
            self.last_line = now
            log.info(
                "%d trial(s) running, %s elapsed%s",
                running,
                fmt_duration(now - self.started),
                "" if self.done_here else "; each trial reports when it ends",
            )


def resume_command(argv: list[str] | None) -> str:
    """The command that continues this sweep: its own command line plus --resume (what to type
    after Ctrl-C), or a generic hint when the command line is unknown."""
    if not argv:
        return "the same command plus --resume"
    args = [a for a in argv if a not in ("--resume", "--overwrite")]
    head = os.path.basename(args[0]) if args else ""
    if head == "run_sweep.py" or head.endswith(".py"):
        args = ["python", args[0], *args[1:]]
    elif head == "mer" or head.endswith(os.sep + "mer"):
        args = ["mer", *args[1:]]
    elif args and not args[0].startswith("-") and not args[0].endswith((".yaml", ".yml")):
        args = ["mer", *args]
    else:  # parsed arguments only (run_sweep.main(argv) from Python)
        args = ["python", "run_sweep.py", *args]
    return shlex.join([*args, "--resume"])
