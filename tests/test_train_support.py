"""Shared helpers for the training tests: a tiny PreparedData with a planted signal and a small
stand-in network (run_fold with the real network: test_train.py's t2d test, test_train_learn.py
and the sweep tests). No tests here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mer.config import from_dict
from mer.protocol import make_folds

CLASSES = ["negative", "positive", "surprise"]


@dataclass
class TinyData:
    """Same fields as mer.data.cache.PreparedData."""

    samples: pd.DataFrame
    class_names: list[str]
    global_clips: np.ndarray
    region_clips: np.ndarray | None = None
    key: str = "tiny"
    path: Path | None = None
    oracle_input: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def branch_b(self) -> np.ndarray:
        return self.region_clips if self.region_clips is not None else self.global_clips


def tiny_data(
    subjects: int = 4,
    clips: int = 6,
    t: int = 4,
    size: int = 8,
    seed: int = 0,
    *,
    regions: bool = True,
    oracle_input: bool = False,
) -> TinyData:
    """Clips of noise in [0, 100) plus +120 on channel `label` (branch B: the same, stronger)."""
    rng = np.random.default_rng(seed)
    n = subjects * clips
    g = rng.integers(0, 100, size=(n, t, size, size, 3), dtype=np.uint8)
    r = rng.integers(0, 100, size=(n, t, size, size, 3), dtype=np.uint8) if regions else None
    rows = []
    for s in range(subjects):
        for c in range(clips):
            i = s * clips + c
            y = c % 3
            g[i, ..., y] += 120
            if r is not None:
                r[i, ..., y] += 150
            rows.append(
                {
                    "sample_id": f"synthetic/s{s}/c{c:02d}",
                    "dataset": "synthetic",
                    "subject": f"synthetic/s{s}",
                    "clip": f"c{c:02d}",
                    "label": y,
                }
            )
    return TinyData(pd.DataFrame(rows), list(CLASSES), g, r, oracle_input=oracle_input)


class TinyNet(nn.Module):
    """Stand-in for mer.models' network: per-branch 1×1×1 conv, global mean, two Linears."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3):
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, 4, 1)
        self.conv_b = nn.Conv3d(in_channels, 4, 1)
        self.fc = nn.Linear(8, 16)
        self.fc.l2 = True
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(16, num_classes)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        f = torch.cat([self.conv_a(x_a).mean((2, 3, 4)), self.conv_b(x_b).mean((2, 3, 4))], 1)
        return self.out(self.drop(torch.relu(self.fc(f))))

    def l2_parameters(self) -> list[nn.Parameter]:
        return [self.fc.weight]


def use_tiny_net(monkeypatch) -> list[tuple]:
    """Make run_fold build TinyNet; returns the list of (model_cfg, input_shape) calls."""
    import mer.models

    calls: list[tuple] = []

    def build(model_cfg, input_shape):
        calls.append((model_cfg, tuple(input_shape)))
        return TinyNet(model_cfg.num_classes, model_cfg.in_channels)

    monkeypatch.setattr(mer.models, "build_model", build, raising=False)
    return calls


def tiny_cfg(**sections: dict):
    raw: dict[str, Any] = {
        "name": "tiny",
        "train": {"epochs": 3, "batch_size": 4, "lr": 1e-2, "threads": 1},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return from_dict(raw)


def folds_of(data: TinyData, cfg, seed: int = 0):
    return make_folds(data.samples, cfg.protocol, seed)
