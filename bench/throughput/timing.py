"""Timers and meters shared by every row: elapsed seconds of a block (CUDA events on the
device), peak memory, and the matmul rate that `%ceil` divides by."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.throughput.device import cleanup


def elapsed(block: Callable[[], object], device: torch.device) -> float:
    """Seconds `block()` took: wall clock on CPU; on CUDA, events around it after a
    synchronize (they count idle gaps on the device too)."""
    if device.type != "cuda":
        t0 = time.perf_counter()
        block()
        return time.perf_counter() - t0
    torch.cuda.synchronize(device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    block()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_memory_mb(device: torch.device) -> float | None:
    """torch's peak allocation on CUDA (since the last reset); the resident set size on CPU."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()


def matmul_ceiling(device: torch.device) -> tuple[float, str]:
    """Measured matrix-product rate in TFLOP/s (median of timed products, random inputs)."""
    if device.type == "cuda":
        n, dtype, reps, warmup = 8192, torch.bfloat16, 10, 3
        label = f"bf16 matmul {n}³, median of {reps}"
    else:
        n, dtype, reps, warmup = 512, torch.float32, 5, 2
        label = f"CPU fp32 matmul {n}³, median of {reps} (not a GPU ceiling)"
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    product = functools.partial(torch.matmul, a, b)
    for _ in range(warmup):
        product()
    times = [elapsed(product, device) for _ in range(reps)]
    del a, b, product
    cleanup(device)
    return 2 * n**3 / statistics.median(times) / 1e12, label
