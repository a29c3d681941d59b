"""How much of the cluster one trial asks for, and how many trials run at once.

Pure functions of the config and plain resource dicts (`{"CPU": 8.0, "GPU": 1.0}` as
`ray.cluster_resources()` returns them, and the autoscaler's ceiling): no Ray import, so every
rule is unit-tested with dicts. They exist because Tune accepts requests no cluster can meet and
then waits for ever: a trial asking for more than the cluster could ever hold, or `cuda` on a
GPU-less cluster, is refused here before any trial starts; and a cluster whose autoscaler starts
GPU workers on demand (min_workers 0) must still be asked for GPUs, or it never starts any.
"""

from __future__ import annotations

import logging
import math

from mer.config import ExperimentConfig
from mer.errors import ConfigError
from mer.experiment.plan import SweepPlan

log = logging.getLogger(__name__)


def capacity(
    cfg: ExperimentConfig,
    cluster: dict[str, float],
    ceiling: dict[str, float],
    *,
    remote: bool = True,
) -> dict[str, float]:
    """CPUs and GPUs the cluster has now or may have once its autoscaler has scaled up
    (`ceiling`); `resources.wait_for_gpus` overrides what the autoscaler state says (true with
    no known ceiling: unbounded, the autoscaler's max_workers decides). A Ray started by this
    process (`remote` False) has no autoscaler: what it has is all there is."""
    cap = {k: max(cluster.get(k, 0.0), ceiling.get(k, 0.0)) for k in ("CPU", "GPU")}
    wait = cfg.resources.wait_for_gpus if remote else False
    if wait is False:
        cap["GPU"] = cluster.get("GPU", 0.0)
    elif wait and cap["GPU"] == 0:
        cap = {"CPU": math.inf, "GPU": math.inf}
    return cap


def trial_resources(
    cfg: ExperimentConfig,
    cluster: dict[str, float],
    ceiling: dict[str, float] | None = None,
    *,
    remote: bool = False,
) -> dict[str, float]:
    """Resources of one trial. Without any GPU, now or from the autoscaler (`ceiling`), trials
    run on CPU (logged). With GPU nodes still to come (cluster.yaml: min_workers 0) they keep
    their GPU share and wait: asking is what makes the autoscaler start GPU workers."""
    gpu = float(cfg.resources.gpu_per_trial)
    cap = capacity(cfg, cluster, ceiling or {}, remote=remote)
    if cap["GPU"] == 0 and gpu > 0:
        if remote and cfg.resources.wait_for_gpus is None:
            log.warning(
                "the Ray cluster has no GPU node now and reports none to come: trials run on "
                "CPU (resources.gpu_per_trial %g -> 0). If its autoscaler starts GPU workers on "
                "demand (cluster.yaml), set resources.wait_for_gpus: true",
                gpu,
            )
        else:
            log.info(
                "the Ray cluster has no GPUs: trials run on CPU (resources.gpu_per_trial %g -> 0)",
                gpu,
            )
        gpu = 0.0
    elif cluster.get("GPU", 0) == 0 and gpu > 0:
        log.warning(
            "no GPU node is up yet: trials ask for %g GPU each and wait for the autoscaler to "
            "start GPU workers (%s); resources.wait_for_gpus false runs them on CPU",
            gpu,
            f"up to {cap['GPU']:g} GPUs" if cap["GPU"] < 1e6 else "resources.wait_for_gpus",
        )  # fmt: skip
    cluster = cap
    if gpu > cluster.get("GPU", 0):
        raise ConfigError(
            f"resources.gpu_per_trial: {gpu:g} GPUs per trial but the cluster has "
            f"{cluster.get('GPU', 0):g}; no trial could ever start"
        )
    cpu = float(cfg.resources.cpu_per_trial)
    if cpu == 0 and gpu == 0:  # Ray cannot place a trial that asks for nothing
        why = "gpu_per_trial is 0" if cfg.resources.gpu_per_trial == 0 else "the cluster has no GPU"
        raise ConfigError(
            f"resources.cpu_per_trial: 0, and trials get no GPU share ({why}): a trial would ask "
            "Ray for nothing, which it cannot schedule; set cpu_per_trial > 0 (e.g. 1). 0 CPUs "
            "is only meaningful with a GPU share, when GPUs alone limit how many trials run"
        )
    if cpu > cluster.get("CPU", 0):
        raise ConfigError(
            f"resources.cpu_per_trial: {cpu:g} CPUs per trial but the cluster has "
            f"{cluster.get('CPU', 0):g}"
        )
    return {"CPU": cpu, "GPU": gpu}


def check_devices(plan: SweepPlan, resources: dict[str, float]) -> None:
    """`train.device: cuda` in a variant whose trials get no GPU share would fail inside every
    trial (after retries); refused before any trial starts."""
    if resources.get("GPU", 0) > 0:
        return
    cuda = [name for name, v in plan.variants.items() if v.cfg.train.device == "cuda"]
    if cuda:
        why = (
            "the Ray cluster has no GPUs"
            if plan.cfg.resources.gpu_per_trial > 0
            else "resources.gpu_per_trial is 0"
        )
        raise ConfigError(
            f"train.device: cuda (variant{'s' if len(cuda) > 1 else ''} {', '.join(cuda)}), "
            f"but {why}, so no trial would see a GPU; use train.device auto or cpu, or "
            "connect to a cluster with GPUs (--address)"
        )


def max_concurrent(
    cfg: ExperimentConfig,
    resources: dict[str, float],
    cluster: dict[str, float],
    requested: int | None,
    num_trials: int,
) -> int:
    """--max-concurrent, else resources.max_concurrent, else what the cluster holds at once."""
    if requested:
        return int(requested)
    if cfg.resources.max_concurrent:
        return int(cfg.resources.max_concurrent)
    limits = []
    for key in ("CPU", "GPU"):
        have = cluster.get(key, 0)
        if resources[key] > 0 and math.isfinite(have):  # inf: the autoscaler decides
            limits.append(math.floor(have / resources[key] + 1e-9))
    cpus = cluster.get("CPU", 1)
    n = min(limits) if limits else (int(cpus) if math.isfinite(cpus) else num_trials)
    return max(1, min(n, max(1, num_trials)))
