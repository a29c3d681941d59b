"""A sweep driver's first steps, taken before its slow imports: claim the results folder, then
start Ray and time the models' training steps (the start line's estimate), both in the
background.

Why a module of its own: `mer sweep` reaches Tune through mer.sweep.session, whose imports (Ray
Tune, pandas) take a second or two, a local Ray takes about three more to start, and timing a
training step first imports torch and torch._dynamo (two seconds). Begun here, from the command
line, before that import, all of it overlaps: the driver imports, prepares data and plans while
Ray starts and the models are timed. This module imports nothing slow itself.

The folder is claimed first, as before: a second run on a folder in use stops here, before a Ray
is started for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mer.config import ExperimentConfig
from mer.experiment.claim import FolderClaim
from mer.sweep import outdir
from mer.sweep.cluster import BackgroundStart, check_reachable
from mer.sweep.options import RunOptions

if TYPE_CHECKING:
    from mer.sweep.estimate import StepTimer


@dataclass
class Startup:
    """The claimed folder and the Ray start under way, until a Session takes them over."""

    held: FolderClaim
    clear: bool  # --overwrite is to clear the folder (once data and plan are ready)
    ray_start: BackgroundStart
    timer: StepTimer  # the models' training steps, timed while Ray starts
    taken: bool = False  # a Session owns the claim and the Ray connection now
    closed: bool = False

    def take(self) -> None:
        """A Session owns them from now on (Session.close releases them)."""
        self.taken = True

    def close(self) -> None:
        """The run ended before a Session took over: stop the Ray started for it (waiting for a
        start still under way) and release the folder. Idempotent; a no-op once taken."""
        if self.taken or self.closed:
            return
        self.closed = True
        try:
            self.ray_start.abandon()
        finally:
            self.held.release()


def begin(cfg: ExperimentConfig, opts: RunOptions) -> Startup:
    """Check a cluster address, claim and check the results folder, start Ray in a thread and
    time the models' training steps in another (until Ray is up)."""
    if opts.address:
        check_reachable(opts.address)  # before data preparation, which can take minutes
    held = outdir.claim_out_dir(cfg, opts)  # first: a second run on this folder stops here
    try:
        clear = outdir.check_out_dir(cfg, opts)
        ray_start = BackgroundStart(opts.address, num_cpus=opts.num_cpus)
    except BaseException:
        held.release()
        raise
    from mer.experiment.plan import variant_configs  # lazy: pandas; imported once Ray starts
    from mer.sweep.estimate import StepTimer  # lazy: the plan and model code (as above)

    timer = StepTimer()
    gpu = float(cfg.resources.gpu_per_trial)
    if not (opts.address and gpu > 0):  # GPU trials on a cluster: estimated from GPU-hours
        cfgs = list(variant_configs(cfg).values())
        timer.start(cfgs, until=ray_start.done, gpu_per_trial=gpu)
    return Startup(held, clear, ray_start, timer)
