"""Device, precision and memory-format choices; seeding and RNG state for exact resumption."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mer.config import TrainConfig
from mer.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = fp32
    channels_last: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def sync(self) -> None:
        """Wait for queued device work, so wall-clock timings mean something."""
        if self.cuda:
            torch.cuda.synchronize(self.device)


def resolve_runtime(train: TrainConfig) -> Runtime:
    """Resolve `auto`: CUDA when present; fp32 and contiguous tensors on every device.

    Why fp32 on CUDA: on an H100 at the paper's batch of 8 (docs/design/PERFORMANCE.md), fp32
    trains 417 clips/s, bf16 autocast 261 and bf16 + channels_last_3d 306 — both slower; cuDNN
    already computes fp32 convolutions with TF32. bf16/channels_last only pay off at batch >= 32,
    which changes the optimisation, so they stay opt-in (`precision: bf16`, `channels_last: on`).
    Until bench.throughput has an H100 table (bench/RESULTS.md) this is the evidence there is.
    """
    if train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda requested but torch sees no CUDA device")
    use_cuda = train.device == "cuda" or (train.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda") if use_cuda else torch.device("cpu")
    amp = torch.bfloat16 if train.precision == "bf16" else None
    channels_last = train.channels_last == "on"
    return Runtime(device=device, amp_dtype=amp, channels_last=channels_last)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return the CPU generator used for shuffling
    and augmentation (its own stream, so dropout does not shift the batch order).

    `torch.use_deterministic_algorithms` is not switched on: the CPU kernels used here are
    deterministic already (tests check bit-identical reruns), and enabling it imports
    torch._inductor, about 1.5 s per trial process. On CUDA, cudnn.benchmark is preferred to
    bit-exact reruns.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed + 0x5EED)
    return gen


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "generator": gen.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_cpu(obj: Any) -> Any:
    """Deep copy of nested state (dicts, lists, tensors) with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj
