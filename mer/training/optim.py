"""Optimiser and LR schedule of the original: Adam (eps 1e-7, Keras' default) and a per-epoch step
decay (lr × gamma every `lr_step` epochs; 0 = constant)."""

from __future__ import annotations

import torch
from torch import nn

from mer.config import TrainConfig


def build_optimizer(model: nn.Module, train: TrainConfig, device: torch.device):
    params = [p for p in model.parameters() if p.requires_grad]
    # fused Adam: one kernel per step instead of many small ones (CUDA only)
    fused = device.type == "cuda"
    return torch.optim.Adam(
        params, lr=train.lr, betas=tuple(train.betas), eps=train.eps, fused=fused or None
    )


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig):
    """StepLR stepped once per epoch, or None when `lr_step` is 0."""
    if train.lr_step <= 0:
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.lr_step, gamma=train.lr_gamma)
