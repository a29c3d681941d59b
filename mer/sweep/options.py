"""What one sweep run was asked to do: the launcher's choices, apart from the config.

A dataclass of its own because every part of a run reads it (the results-folder checks, the
session, the search, the hold-out evaluation it starts with `dataclasses.replace`), and none of
them should depend on the command line that filled it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mer.sweep.hooks import TrialHooks, load_trial_hooks


@dataclass
class RunOptions:
    """Command-line choices of one sweep run (`mer sweep` / run_sweep.py)."""

    out: Path
    resume: bool = False
    overwrite: bool = False
    max_concurrent: int | None = None
    wandb: str | None = None  # None: tracking.wandb.mode of the config
    address: str | None = None  # None: start a local Ray
    storage: str | None = None  # Tune storage (shared path for clusters); default OUT/ray
    num_cpus: int | None = None  # CPUs of a local Ray (default: all)
    report_every_s: float = 30.0
    argv: list[str] | None = None
    # code run inside every trial (mer.sweep.hooks); default: what MER_TRIAL_HOOKS names, if set
    trial_hooks: TrialHooks = field(default_factory=load_trial_hooks)
