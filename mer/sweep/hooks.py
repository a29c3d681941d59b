"""Trial hooks: code that runs inside every trial, wherever Ray places it, at three moments:
when the trial starts, right after each checkpoint, and when it ends (finished or failed).

Why an extension point: a trial runs in a worker process on any node of the cluster, out of
reach of the driver; anything that must observe or perturb trials there (a profiler started at
the start and dumped at the end, chaos testing that fails a trial after a checkpoint to exercise
retry-from-checkpoint on a real cluster, timing probes, the test suite's fault injection in
tests/support/faults.py) needs a way in that the training code does not know about.

A hooks object is made once in the driver and travels with the trainable to every worker
(pickled: its class must be importable there; a local Ray gets this checkout's root on its
PYTHONPATH, a cluster's nodes need the code installed or on theirs). It runs in the trial's own
process, so anything it raises fails the trial like any other error: Tune retries it from its
last checkpoint (`resources.max_failures`), and the hooks see that retry start again.

Plugging one in: `RunOptions(trial_hooks=...)` from Python; for a command-line run
(`mer sweep`, run_sweep.py, also `--trial`) the environment variable
MER_TRIAL_HOOKS=package.module:factory, a class or function the driver calls with no arguments.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mer.errors import ConfigError

if TYPE_CHECKING:  # the command line imports this before the plan code (start-up)
    from mer.experiment.plan import TrialSpec

log = logging.getLogger(__name__)

ENV_VAR = "MER_TRIAL_HOOKS"
METHODS = ("on_start", "after_checkpoint", "on_end")


class TrialHooks(Protocol):
    """What a trial calls; subclass it to inherit do-nothing defaults for the moments you skip.

    `info` keys: at the start `node` (Ray node id, None outside Ray), `resumed_from` (epoch of
    the checkpoint this attempt resumes from, else None), `hostname`, `device` (what the fold
    trains on), `cuda_available`, `cuda_visible_devices` and, in a Ray trial, `ray_gpu_ids`; at
    the end `node`, `resumed_from` and `started` (time.time() when the attempt started).
    """

    def on_start(self, spec: TrialSpec, info: Mapping[str, Any]) -> None:
        """Before the fold trains (raising here fails the attempt before any epoch)."""

    def after_checkpoint(self, spec: TrialSpec, epoch: int) -> None:
        """Right after the checkpoint of `epoch` was reported: a retry resumes from it."""

    def on_end(self, spec: TrialSpec, info: Mapping[str, Any], error: BaseException | None) -> None:
        """After the fold's results are ready (`error` None; they are reported next), or after
        the attempt failed (`error` is what it raised; it is raised again after this returns)."""


class NoTrialHooks(TrialHooks):
    """The default: nothing runs."""


def load_trial_hooks(env: Mapping[str, str] | None = None) -> TrialHooks:
    """The hooks MER_TRIAL_HOOKS names (`package.module:factory`), else `NoTrialHooks()`.

    A set variable is logged as a warning: hooks may slow trials or fail them on purpose, and a
    variable left over in a shell must not do that to a real sweep unnoticed.
    """
    text = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    if not text:
        return NoTrialHooks()
    module, sep, name = text.partition(":")
    if not (sep and module and name):
        raise ConfigError(
            f"{ENV_VAR}={text!r}: expected package.module:factory (a class or function that "
            "takes no arguments and returns the trial hooks)"
        )
    try:
        factory: Any = importlib.import_module(module)
        for part in name.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{ENV_VAR}={text!r}: cannot import it ({exc})") from None
    hooks = factory()
    missing = [m for m in METHODS if not callable(getattr(hooks, m, None))]
    if missing:
        raise ConfigError(
            f"{ENV_VAR}={text!r}: {type(hooks).__name__} has no {', '.join(missing)} "
            "(see mer.sweep.hooks.TrialHooks)"
        )
    log.warning(
        "trial hooks from %s=%s (%r) run inside every trial; they may slow or fail trials",
        ENV_VAR, text, hooks,
    )  # fmt: skip
    return hooks
