"""A fold's clips resident on the training device, and a guard on its labels.

The fold's uint8 arrays are copied to the device once (train, val and test rows); batches are
indexed there and converted to float per batch, so no DataLoader worker or host-to-device copy
runs per step (PERFORMANCE.md). Labels are handed out by `LabelGuard`, which refuses the test
subject's labels until the final test prediction exists, except in the oracle_test mode that
exists only to reproduce the paper (PROTOCOL.md §4).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from mer.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class LockedTestLabels(RuntimeError):
    """Code asked for the test subject's labels before the final test prediction (a bug)."""


class LabelGuard:
    """Labels of a fold by split; test labels only after `open_test()` (or from the start in
    oracle_test mode). `events` records every access, so tests can check the order."""

    __test__ = False  # not a pytest class

    def __init__(self, labels: np.ndarray, rows: dict[str, np.ndarray], *, test_open: bool):
        self._labels = np.asarray(labels)
        self._rows = rows
        self._test_open = bool(test_open)
        self.events: list[str] = []

    @property
    def test_open(self) -> bool:
        return self._test_open

    def open_test(self) -> None:
        self.events.append("open_test")
        self._test_open = True

    def get(self, split: str) -> np.ndarray:
        if split == "test" and not self._test_open:
            raise LockedTestLabels(
                "test labels requested before the final test prediction; only "
                "protocol.selection oracle_test may look at them during training"
            )
        self.events.append(f"labels:{split}")
        return self._labels[self._rows[split]].astype(np.int64)


def _channel_stats(x: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of a uint8 (N, T, H, W, C) tensor, in [0, 1] units."""
    c = x.shape[-1]
    total = torch.zeros(c, dtype=torch.float64, device=x.device)
    total_sq = torch.zeros(c, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].reshape(-1, c).to(torch.float64)
        total += part.sum(0)
        total_sq += part.pow(2).sum(0)
    count = x[..., 0].numel()
    mean = total / count
    var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
    std = var.sqrt()
    if (std == 0).any():
        log.warning("train_stats scaling: constant channel(s) in the training clips; std set to 1")
        std = torch.where(std == 0, torch.full_like(std, 255.0), std)
    return mean / 255.0, std / 255.0


class FoldTensors:
    """Device-resident uint8 clips of one fold, indexed per split; per-batch float conversion.

    `batch(split, idx)` returns both branches as float (B, C, T, H, W) in [0, 1] (before
    augmentation); `normalise` applies the scaling chosen by `train.scaling`: `fixed` is x/255,
    `train_stats` additionally subtracts the per-channel mean and divides by the std of this
    fold's training rows only (branch A and B separately).
    """

    def __init__(
        self,
        data: Any,
        rows: dict[str, np.ndarray],
        device: torch.device,
        *,
        scaling: str = "fixed",
        channels_last: bool = False,
    ):
        self.device = device
        self.channels_last = channels_last
        self.rows = {s: np.asarray(rows[s], dtype=np.int64) for s in SPLITS}
        self.sizes = {s: int(self.rows[s].size) for s in SPLITS}
        order = np.concatenate([self.rows[s] for s in SPLITS])
        a_all = self._load(data.global_clips, order, "global_clips")
        region = getattr(data, "region_clips", None)
        b_all = a_all if region is None else self._load(region, order, "region_clips")
        if b_all.shape != a_all.shape:
            raise DataError(
                f"prepared data: region_clips shape {tuple(b_all.shape)} differs from "
                f"global_clips {tuple(a_all.shape)}; both branches need (N, T, H, W, C) clips"
            )
        self.shared_branches = b_all is a_all
        self.a: dict[str, torch.Tensor] = {}
        self.b: dict[str, torch.Tensor] = {}
        offset = 0
        for s in SPLITS:
            n = self.sizes[s]
            self.a[s] = a_all[offset : offset + n]
            self.b[s] = self.a[s] if self.shared_branches else b_all[offset : offset + n]
            offset += n
        self.clip_shape = tuple(a_all.shape[1:4])  # (T, H, W)
        self.channels = int(a_all.shape[-1])
        self.scaling = scaling
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if scaling == "train_stats":
            self.stats["a"] = _channel_stats(self.a["train"])
            self.stats["b"] = (
                self.stats["a"] if self.shared_branches else _channel_stats(self.b["train"])
            )
            self._norm = {
                k: (
                    m.to(torch.float32).view(1, -1, 1, 1, 1),
                    s.to(torch.float32).view(1, -1, 1, 1, 1),
                )
                for k, (m, s) in self.stats.items()
            }

    def _load(self, array: np.ndarray, order: np.ndarray, what: str) -> torch.Tensor:
        arr = np.asarray(array[order]) if order.size else np.asarray(array[:0])
        if arr.dtype != np.uint8 or arr.ndim != 5:
            raise DataError(
                f"prepared data: {what} must be uint8 (N, T, H, W, C) clips, got {arr.dtype} "
                f"with shape {arr.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)

    def batch(self, split: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips `idx` (positions in `split`), both branches, float (B, C, T, H, W) in [0, 1]."""
        xa = self._to_float(self.a[split].index_select(0, idx))
        xb = xa if self.shared_branches else self._to_float(self.b[split].index_select(0, idx))
        return xa, xb

    @staticmethod
    def _to_float(u8: torch.Tensor) -> torch.Tensor:
        # (B, T, H, W, C) → (B, C, T, H, W) view: already the channels_last_3d memory layout.
        return u8.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)

    def normalise(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        """Scaling + the memory format the model runs in."""
        if self.scaling == "train_stats":
            mean, std = self._norm[branch]
            x = (x - mean) / std
        fmt = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def model_inputs(self, xa: torch.Tensor, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        na = self.normalise(xa, "a")
        nb = na if (xb is xa and self.shared_branches) else self.normalise(xb, "b")
        return na, nb
