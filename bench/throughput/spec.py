"""What every row shares (`Spec`: model config, clip shape, step counts) and its random data:
the uint8 clip pool, the baseline's host float32 copy and each member's batch sequence."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from bench.throughput.settings import BASE_BATCH, Setting, SettingError
from mer.config import ModelConfig
from mer.config import replace as replace_config
from mer.models import PRESETS

PAPER_SHAPE = (30, 128, 128)
TINY_SHAPE = (8, 16, 16)
TINY_MODEL: dict[str, Any] = {
    "conv_a_channels": 4,
    "conv_b_channels": 4,
    "merge_channels": 8,
    "attention_reduction": 4,
    "dense": [16, 8],
    "recurrent_units": 16,
    "msmh_scales": [2, 4, 8, 16],
    "head": [16, 8],
}
SEQ_LEN = 16  # distinct batches per member, cycled


@dataclass(frozen=True)
class Spec:
    """What every row shares: model, clip shape, data pool and step counts."""

    model_cfg: ModelConfig
    shape: tuple[int, int, int]
    pool: int = 64
    seed: int = 0
    steps: int = 30
    warmup: int = 5
    repeats: int = 3
    check_steps: int = 5
    tiny: bool = False

    def steps_for(self, s: Setting) -> int:
        return max(3, round(self.steps * BASE_BATCH / s.clips_per_step))


def make_spec(args: argparse.Namespace) -> Spec:
    cfg = PRESETS["casme2"]
    if args.tiny:
        cfg = replace_config(cfg, **TINY_MODEL)
    pool = args.pool or (16 if args.tiny else 64)
    return Spec(
        model_cfg=cfg,
        shape=TINY_SHAPE if args.tiny else PAPER_SHAPE,
        pool=pool,
        seed=args.seed,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        check_steps=args.check_steps,
        tiny=bool(args.tiny),
    )


def no_dropout(cfg: ModelConfig) -> ModelConfig:
    return replace_config(
        cfg, dropout=0.0, dense_out_dropout=0.0, head_in_dropout=0.0, head_dropout=0.0
    )


# --------------------------------------------------------------------------------------- data
_CACHE: dict[tuple, Any] = {}


def clip_pool(spec: Spec) -> dict[str, torch.Tensor]:
    """Random uint8 clips (N, T, H, W, C) for both branches and labels, on the host (cached).
    Random, not zeros: zeros can run faster than real data."""
    key = ("pool", spec.shape, spec.pool, spec.seed, spec.model_cfg.in_channels)
    if key not in _CACHE:
        g = torch.Generator().manual_seed(1000 + spec.seed)
        t, h, w = spec.shape
        shape = (spec.pool, t, h, w, spec.model_cfg.in_channels)
        _CACHE[key] = {
            "a": torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
            "b": torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
            "y": torch.randint(0, spec.model_cfg.num_classes, (spec.pool,), generator=g),
        }
    return _CACHE[key]


def host_pool(spec: Spec) -> dict[str, torch.Tensor]:
    """The baseline's data: plain pageable float32 (N, C, T, H, W) tensors in [0, 1]."""
    key = ("host", spec.shape, spec.pool, spec.seed, spec.model_cfg.in_channels)
    if key not in _CACHE:
        pool = clip_pool(spec)
        _CACHE[key] = {
            k: pool[k].permute(0, 4, 1, 2, 3).float().div_(255.0).contiguous() for k in ("a", "b")
        }
    return _CACHE[key]


def index_sequence(spec: Spec, batch: int, member: int, check: bool) -> torch.Tensor:
    """(L, batch) distinct pool rows per step for one member; the same for every setting."""
    if batch > spec.pool:
        raise SettingError(f"batch {batch} is larger than the clip pool ({spec.pool}); see --pool")
    g = torch.Generator().manual_seed(spec.seed * 7919 + member * 104729 + (17 if check else 0))
    length = max(SEQ_LEN, spec.check_steps)
    return torch.stack([torch.randperm(spec.pool, generator=g)[:batch] for _ in range(length)])
