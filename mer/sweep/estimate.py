"""How long a sweep will take, said when it starts, and its ETA as trials finish.

Why a measurement and not the dry run's FLOP model: the dry run assumes the paper model on an
H100; a sweep on CPU (the demo, a laptop) trains small models that are bound by per-step
overhead, not FLOPs, and FLOP scaling misses them by an order of magnitude. Timing a few real
training steps of the sweep's model here, on the trials' thread count, takes a second and lands
within a factor of about two of the real run on the same machine. Trials on GPUs the driver
cannot see are estimated from the plan's GPU-hours instead, and say so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from mer.config import to_dict
from mer.experiment.costs import estimate_gpu_hours
from mer.experiment.environment import cpu_name
from mer.experiment.plan import SweepPlan
from mer.models.summary import code_digest, input_shape
from mer.util.files import write_text_atomic

log = logging.getLogger(__name__)

# per-trial cost beyond training steps (worker start, data fetch, model build, final
# prediction), seconds; measured on the demo at 2 CPUs (bench: trials of ~8 s spend ~2 s there)
TRIAL_OVERHEAD_S = 2.0
# each of the `concurrency` Ray workers starts once (Python, torch, mer, W&B): 8-10 s on two idle
# cores, 30 s on loaded ones (a demo's first trials against its later ones)
WORKER_START_S = 10.0
MAX_TIMING_S = 5.0  # a model too slow to time here gets fewer steps timed, never a long wait
STEP_TIMES_DIR = "step_times"  # under data.cache_dir: timed steps by model and machine
STEP_TIME_MAX_AGE_S = 30 * 86400  # older timings are taken again (a changed machine, a driver)


@lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    """What a step time on this machine's CPU depends on besides the model: host, CPU model and
    count (a timing from another machine of a shared cache_dir must not be reused)."""
    return {"host": platform.node(), "cpu": cpu_name(), "cpus": os.cpu_count()}


def step_time_path(cfg: Any) -> Path:
    """Where the timed training step of cfg's model on this machine is cached: by the model
    section, input shape, batch size, thread count, model code, torch version and machine."""
    what = {
        "model": to_dict(cfg.model),
        "shape": input_shape(cfg),
        "batch": cfg.train.batch_size,
        "threads": cfg.train.threads,
        "code": code_digest(),
        "machine": _machine(),
    }
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cfg.data.cache_dir).expanduser() / STEP_TIMES_DIR / f"{key}.json"


def cached_step_time(cfg: Any, *, now: float | None = None) -> float | None:
    """The cached step time of cfg's model on this machine, if timed within the last 30 days."""
    path = step_time_path(cfg)
    try:
        found = json.loads(path.read_text())
        seconds, at = float(found["seconds"]), float(found["timed_at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.debug("%s: unreadable step time; timing again", path)
        return None
    age = (time.time() if now is None else now) - at
    return seconds if 0 <= age <= STEP_TIME_MAX_AGE_S and seconds > 0 else None


def step_time(cfg: Any) -> float:
    """Seconds of one training step of cfg's model here: cached, else timed and cached.

    Why cached: timing imports torch and torch._dynamo in the driver (two CPU-seconds) while Ray
    starts and the first trial's worker imports the same on a small machine's few cores; the
    estimate needs one timing per model and machine, not one per start."""
    cached = cached_step_time(cfg)
    if cached is not None:
        return cached
    seconds = time_train_step(cfg)
    try:
        write_text_atomic(
            step_time_path(cfg), json.dumps({"seconds": seconds, "timed_at": time.time()})
        )
    except OSError as exc:  # a read-only cache only costs the next start the timing
        log.debug("step time not cached: %s", exc)
    return seconds


def time_train_step(cfg: Any, *, max_s: float = MAX_TIMING_S) -> float:
    """Seconds of one training step (forward, backward, optimiser) of `cfg`'s model at its
    batch size on this machine's CPU, with the trial's thread count; the median of up to 3
    steps after a warm-up."""
    import torch  # lazy: only a sweep start times a step; `mer --help` stays fast

    from mer.models.network import build_model

    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    try:
        shape = input_shape(cfg)
        model = build_model(cfg.model, input_shape=shape[2:])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand((cfg.train.batch_size, *shape[1:]))
        y = torch.zeros(cfg.train.batch_size, dtype=torch.long)
        times: list[float] = []
        start = time.perf_counter()
        for i in range(4):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x, x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > max_s:
                break
        times = times or [time.perf_counter() - start]
        return sorted(times)[len(times) // 2]
    finally:
        torch.set_num_threads(threads)


def trial_steps(plan: SweepPlan) -> dict[str, float]:
    """Training steps of one trial per variant (epochs x batches of its mean training set),
    evaluation counted as a third of a step per batch of its validation and test clips."""
    out: dict[str, float] = {}
    for v in plan.variants.values():
        folds = [f for fs in v.folds.values() for f in fs]
        if not folds:
            continue
        bs = v.cfg.train.batch_size
        train = sum(int(f.train.size) for f in folds) / len(folds)
        evals = sum(int(f.val.size) + int(f.test.size) for f in folds) / len(folds)
        epochs = v.cfg.train.epochs
        val_epochs = epochs if v.cfg.protocol.selection != "fixed_epochs" else 1
        out[v.name] = epochs * math.ceil(train / bs) + val_epochs * math.ceil(evals / bs) / 3
    return out


class StepTimer:
    """Timed training steps by model (`time_train_step`), each timed once and shared by the
    variants that train the same model.

    Why an object with a thread: a sweep driver starts timing its models in the background the
    moment it has read the sweep (`start`), while it imports, plans and waits for Ray, so the
    start line's estimate is ready when Ray is; `estimate_sweep` then only times what is
    missing (waiting for a model being timed rather than timing it twice)."""

    def __init__(self) -> None:
        self.timed: dict[tuple, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @staticmethod
    def key(cfg: Any) -> tuple:
        return (repr(cfg.model), cfg.train.batch_size, cfg.train.threads, input_shape(cfg))

    def seconds(self, cfg: Any) -> float:
        key = self.key(cfg)
        with self._lock:
            if key not in self.timed:
                self.timed[key] = step_time(cfg)
            return self.timed[key]

    def start(
        self, cfgs: list[Any], *, until: Callable[[], bool], gpu_per_trial: float = 0.0
    ) -> None:
        """Time the models of `cfgs` in a thread, in order, starting none once `until()` is
        true. Nothing is timed for trials that will train on a GPU here (estimated from the
        plan's GPU-hours); a failure only leaves the timing to `estimate_sweep`."""

        def run() -> None:
            try:
                if gpu_per_trial > 0:
                    import torch  # lazy: seconds to import (this thread exists to pay them)

                    if torch.cuda.is_available():
                        return
                for cfg in cfgs:
                    if until():
                        return
                    self.seconds(cfg)
            except Exception as exc:  # noqa: BLE001 - an estimate must not stop a sweep
                log.debug("training step not timed in the background: %r", exc)

        self._thread = threading.Thread(target=run, name="mer-step-timer", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background timing (`start`) to end."""
        if self._thread is not None:
            self._thread.join(timeout)


def estimate_sweep(
    plan: SweepPlan,
    trials: list[Any],
    concurrency: int,
    gpu_per_trial: float,
    timer: StepTimer | None = None,
) -> tuple[float | None, str]:
    """(seconds, how) for `trials` (TrialSpecs still to run) `concurrency` at a time: from a
    timed training step here when trials run on CPU, from the plan's GPU-hours on GPUs.
    `timer`: steps timed earlier (timed here when missing)."""
    if not trials:
        return 0.0, "nothing left to run"
    per_variant: dict[str, int] = {}
    for t in trials:
        per_variant[t.variant] = per_variant.get(t.variant, 0) + 1
    if gpu_per_trial > 0:
        hours = estimate_gpu_hours(plan)["per_variant"]
        if any(hours.get(v) is None for v in per_variant):
            return None, "no model statistics"
        share = {v: hours[v] * 3600 / max(len(plan.trials_of(v)), 1) for v in per_variant}
        gpus = concurrency * gpu_per_trial
        total = sum(n * (share[v] + TRIAL_OVERHEAD_S) for v, n in per_variant.items())
        return total / max(gpus, gpu_per_trial), "the dry run's H100 throughput model"
    timer = timer if timer is not None else StepTimer()
    steps = trial_steps(plan)
    total = 0.0
    for v, n in per_variant.items():
        step_s = timer.seconds(plan.variants[v].cfg)
        total += n * (steps.get(v, 0.0) * step_s + TRIAL_OVERHEAD_S)
    return total / max(concurrency, 1) + WORKER_START_S, "a timed training step on this machine"
