"""One local Ray per harness process, shared by packed rows and the e2e Tune trial."""

from __future__ import annotations

import logging
import os
import time

import torch

from bench.throughput.device import REPO

_RAY = {"started": False}


def ray_start(device: torch.device, cpus: int = 0) -> float:
    """Start a local Ray once per harness process (reused by later rows); seconds it took.
    Workers get the repository on PYTHONPATH so they import bench.throughput by name."""
    import ray

    if ray.is_initialized():
        return 0.0
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    t0 = time.perf_counter()
    ray.init(
        num_cpus=max(cpus, os.cpu_count() or 1),
        num_gpus=1 if device.type == "cuda" else 0,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
    )
    _RAY["started"] = True
    return time.perf_counter() - t0


def ray_stop() -> None:
    if _RAY["started"]:
        import ray

        ray.shutdown()
        _RAY["started"] = False
