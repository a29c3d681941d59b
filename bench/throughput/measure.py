"""Single-process measurements of a row: FLOPs per clip, the equivalence check against the plain
recipe, and the timed windows (clips/s, spread, setup, memory)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from bench.throughput.device import backend_flags, cleanup
from bench.throughput.runner import Runner, start_runner
from bench.throughput.settings import Setting
from bench.throughput.spec import Spec
from bench.throughput.timing import peak_memory_mb


def flops_per_clip(spec: Spec, device: torch.device) -> float:
    """Forward + backward FLOPs of one baseline training step, per clip (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    s = Setting()
    runner = Runner(s, spec, device, check=True)
    with FlopCounterMode(display=False) as counter:
        runner.step()
    del runner
    cleanup(device)
    return counter.get_total_flops() / s.clips_per_step


def _check_run(
    s: Setting, spec: Spec, device: torch.device, member: int, *, strict_fp32: bool
) -> list[list[float]]:
    """CE of the first `--check-steps` steps, dropout off, (steps, members)."""
    with backend_flags(benchmark=s.benchmark, strict_fp32=strict_fp32):
        runner = Runner(s, spec, device, check=True, member=member)
        traj = runner.trajectory(spec.check_steps)
    del runner
    cleanup(device)
    return traj


def check_trajectory(s: Setting, spec: Spec, device: torch.device, member: int = 0):
    """The row's own CE trajectory with dropout off (fp32 rows: TF32 off too)."""
    return _check_run(s, spec, device, member, strict_fp32=s.precision == "fp32")


def reference(spec: Spec, device: torch.device, batch: int, member: int, cache: dict) -> list:
    """The plain recipe's CE trajectory for one member (fp32, eager, host batches, TF32 off)."""
    key = (batch, member)
    if key not in cache:
        traj = _check_run(Setting(batch=batch), spec, device, member, strict_fp32=True)
        cache[key] = [row[0] for row in traj]
    return cache[key]


def compare(traj: list[list[float]], refs: list[list[float]], tol: float) -> tuple[bool, float]:
    """Max relative difference of each member's CE trajectory to its reference."""
    worst = 0.0
    for m, ref in enumerate(refs):
        for k, r in enumerate(ref):
            f = traj[k][m]
            if not (math.isfinite(f) and math.isfinite(r)):
                return False, float("nan")
            worst = max(worst, abs(f - r) / max(abs(r), 1e-12))
    return worst <= tol, worst


def local_timing(s: Setting, spec: Spec, device: torch.device) -> dict[str, Any]:
    with backend_flags(benchmark=s.benchmark, strict_fp32=not s.tf32):
        cleanup(device)
        runner, setup = start_runner(s, spec, device)
        n = spec.steps_for(s)
        windows = [runner.timed(n) for _ in range(spec.repeats)]
        mem = peak_memory_mb(device)
        del runner
    cleanup(device)
    rates = [n * s.clips_per_step / w for w in windows]
    med = statistics.median(rates)
    return {
        "clips_s": med,
        "spread": (max(rates) - min(rates)) / med if len(rates) > 1 else 0.0,
        "setup_s": setup,
        "mem_mb": mem,
        "steps": n,
        "windows_s": windows,
    }
