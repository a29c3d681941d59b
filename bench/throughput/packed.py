"""Packed rows (`pN`): N processes on one device, each training its own model (Ray actors with
1/N GPU each, or torch.multiprocessing children); clips/s summed over one shared wall clock."""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
from dataclasses import replace
from typing import Any

import torch

from bench.throughput.device import set_backend_flags
from bench.throughput.measure import check_trajectory
from bench.throughput.raysession import ray_start
from bench.throughput.runner import start_runner
from bench.throughput.settings import Setting
from bench.throughput.spec import Spec
from bench.throughput.timing import peak_memory_mb


class PackedWorker:
    """One process of a packed row: its own model, data and CUDA context (a Ray actor or a
    torch.multiprocessing child)."""

    def __init__(self, setting: str, spec: Spec, rank: int, device_type: str, threads: int):
        if threads > 0:
            torch.set_num_threads(threads)
        self.s = Setting.parse(setting)
        self.spec = spec
        self.rank = rank
        self.device = torch.device(device_type)

    def setup(self, check: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": os.getpid()}
        if check:
            out["check"] = check_trajectory(self.s, self.spec, self.device, member=self.rank)
        # this process is the row's own: the flags stay set for run()
        set_backend_flags(benchmark=self.s.benchmark, strict_fp32=not self.s.tf32)
        self.runner, out["setup_s"] = start_runner(self.s, self.spec, self.device, member=self.rank)
        return out

    def run(self, steps: int, repeats: int) -> dict[str, Any]:
        self.runner.sync()
        start = time.time()
        windows = [self.runner.timed(steps) for _ in range(repeats)]
        end = time.time()
        mem = peak_memory_mb(self.device)
        return {
            "start": start,
            "end": end,
            "clips": steps * repeats * self.s.clips_per_step,
            "windows_s": windows,
            "mem_mb": mem,
        }


def _mp_worker(rank, setting, spec, device_type, threads, check, steps, repeats, barrier, queue):
    try:
        worker = PackedWorker(setting, spec, rank, device_type, threads)
        queue.put(("setup", rank, worker.setup(check)))
        barrier.wait(timeout=900)
        queue.put(("run", rank, worker.run(steps, repeats)))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put(("error", rank, traceback.format_exc()))
        with contextlib.suppress(Exception):
            barrier.abort()


def _packed_mp(inner: Setting, spec: Spec, n: int, device, threads: int, check: bool, steps: int):
    ctx = torch.multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    queue = ctx.Queue()
    args = (inner.name, spec, device.type, threads)
    procs = [
        ctx.Process(
            target=_mp_worker,
            args=(rank, *args, check and rank == 0, steps, spec.repeats, barrier, queue),
            daemon=True,
        )
        for rank in range(n)
    ]
    for p in procs:
        p.start()

    def collect(kind: str) -> list[dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        while len(got) < n:
            what, rank, payload = queue.get(timeout=900)
            if what == "error":
                with contextlib.suppress(Exception):
                    barrier.abort()
                raise RuntimeError(f"packed process {rank} failed:\n{payload}")
            got[rank] = payload
        return [got[r] for r in range(n)]

    try:
        setups = collect("setup")
        barrier.wait(timeout=900)
        runs = collect("run")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return setups, runs


def _packed_ray(inner: Setting, spec: Spec, n: int, device, threads: int, check: bool, steps: int):
    import ray

    ray_start(device, cpus=n)
    options: dict[str, Any] = {"num_cpus": 1}
    if device.type == "cuda":
        options["num_gpus"] = math.floor(1e4 / n) / 1e4
    actor = ray.remote(PackedWorker)
    workers = [
        actor.options(**options).remote(inner.name, spec, rank, device.type, threads)
        for rank in range(n)
    ]
    try:
        setups = ray.get([w.setup.remote(check and r == 0) for r, w in enumerate(workers)])
        runs = ray.get([w.run.remote(steps, spec.repeats) for w in workers])
    finally:
        for w in workers:
            ray.kill(w)
    return setups, runs


def packed_timing(s: Setting, spec: Spec, device, *, check: bool, use_ray: bool) -> dict:
    inner = replace(s, procs=1)
    n = s.procs
    threads = 0 if device.type == "cuda" else max(1, (os.cpu_count() or 1) // n)
    steps = spec.steps_for(inner)
    if use_ray:
        try:
            ray_start(device, cpus=n)
        except Exception as exc:  # noqa: BLE001 - fall back rather than lose the row
            print(f"ray did not start ({exc}); packing with torch.multiprocessing", flush=True)
            use_ray = False
    runner = _packed_ray if use_ray else _packed_mp
    setups, runs = runner(inner, spec, n, device, threads, check, steps)
    clips = sum(r["clips"] for r in runs)
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    mems = [r["mem_mb"] for r in runs]
    return {
        "clips_s": clips / wall,
        "spread": None,
        "setup_s": max(x["setup_s"] for x in setups),
        "mem_mb": sum(mems) if all(m is not None for m in mems) else None,
        "steps": steps,
        "windows_s": [r["windows_s"] for r in runs],
        "check_traj": setups[0].get("check"),
        "packing": "ray" if use_ray else "torch.multiprocessing",
    }
