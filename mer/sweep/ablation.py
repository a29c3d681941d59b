"""The ablation grid: every (variant, fold, seed) of the plan as one Tune trial.

Why apart from the session: what the grid needs beyond `Session.run` is its own policy for an
incomplete run. Tune returns normally after Ctrl-C (or SIGUSR1), so only the results tell an
interrupted run (exit 130, nothing logged to W&B as final) from one whose trials all ended
(exit 0, or 1 with failed trials marked INCOMPLETE), helped by whether a stop signal reached
Tune; and a restored Tune experiment counts a trial as finished (or, filed, leaves it out) even
when its results folder was deleted since, so those run again in an experiment of their own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray import tune

from mer.config import ExperimentConfig
from mer.sweep.console import resume_command
from mer.sweep.finished import print_outcome
from mer.sweep.options import RunOptions
from mer.sweep.session import open_session
from mer.sweep.startup import Startup
from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY

log = logging.getLogger(__name__)


def run_ablation(cfg: ExperimentConfig, opts: RunOptions, *, startup: Startup | None = None) -> int:
    """Every (variant, fold, seed) as one Tune trial; prints the summary table. Exit status:
    0 when every trial finished, 1 when some failed (their variants are marked INCOMPLETE),
    130 when Ctrl-C / SIGUSR1 stopped the run (continue with --resume)."""
    session = open_session(cfg, opts, startup=startup)
    try:
        ids = [t.id for t in session.plan.trials]
        # until Tune returns with every trial ended, the run counts as interrupted: a second
        # Ctrl-C raises KeyboardInterrupt out of fit() and must not log summary runs either
        session.interrupted = True
        grid = session.run(param_space={"spec": _grid(ids)})
        # Tune returns normally after Ctrl-C (or SIGUSR1) too: only an experiment whose every
        # trial ended may have lost results to rerun; an interrupted one stops here
        ended = run_ended(
            grid, len(ids), restored=session.restored, signalled=session.stop_signals.seen
        )
        session.interrupted = not ended
        if not ended:
            log.warning(
                "sweep interrupted: %d of %d trial(s) did not end; continue with: %s",
                len(session.missing_trials()), len(ids), resume_command(opts.argv),
            )  # fmt: skip
        lost = session.missing_trials() if opts.resume and ended else []
        if lost:
            # Tune restores a trial it saw finish as finished (or, filed, not at all: its
            # snapshots leave filed trials out), even when its results folder was deleted
            # since: those run again in an experiment of their own.
            log.warning(
                "--resume: %d trial(s) the restored Tune experiment counts as finished have no "
                "results in %s (first: %s); running them again",
                len(lost), opts.out, lost[0],
            )  # fmt: skip
            session.interrupted = True
            rerun = session.run(
                param_space={"spec": _grid(lost)},
                fresh_experiment=f"rerun-{time.strftime('%Y%m%d-%H%M%S')}",
            )
            session.interrupted = not run_ended(
                rerun, len(lost), restored=False, signalled=session.stop_signals.seen
            )
    finally:
        summary = session.finish()
    return print_outcome(cfg, opts.out, summary, interrupted=session.interrupted, argv=opts.argv)


def run_ended(grid: Any, n_trials: int, *, restored: bool, signalled: bool) -> bool:
    """Whether a Tune run of `n_trials` ended with every trial ended, rather than being stopped
    by Ctrl-C / SIGUSR1 / SIGTERM (`signalled`). A fresh run's grid holds every trial Tune
    created, so it must count them all (trials a stop kept from starting are not in it). A
    restored run's grid lacks the trials filed before (Tune's snapshots leave them out,
    mer.sweep.tunestate): there the signal tells, and no trial of the grid may be unended."""
    if signalled:
        return False
    if restored:
        return ended_trials(grid) == len(list(grid))
    return ended_trials(grid) == n_trials


def ended_trials(grid: Any) -> int:
    """Trials of a ResultGrid that ended: failed, or whose last report is the final (or the
    already-done) one. An interrupted trial shows as TERMINATED in Tune, so status says nothing;
    trials the interruption kept from starting are not in the grid at all."""
    n = 0
    for result in grid:
        metrics = result.metrics or {}
        if result.error is not None or metrics.get(FINAL_KEY) or metrics.get(SKIPPED_KEY):
            n += 1
    return n


def _grid(values: list[str]) -> Any:
    """Tune's grid over trial ids: one trial per id, in plan order."""
    return tune.grid_search(values)
