"""On-device, vectorised augmentation of training batches (flip, small rotation, brightness).

Applied to training batches only, after uint8 → float in [0, 1] and before normalisation. One set of
parameters is drawn per clip and used for every frame of the clip and for both branches (the AU
crop is a view of the same face: flipping or darkening one branch but not the other would teach a
mismatch). Random draws come from a CPU `torch.Generator`, so a seed gives the same batches on any
device, and the generator's state goes into checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mer.config import AugmentConfig


def augment_enabled(cfg: AugmentConfig) -> bool:
    return bool(cfg.flip or cfg.rotate > 0 or cfg.brightness > 0)


def _uniform(n: int, gen: torch.Generator, half_width: float) -> torch.Tensor:
    """n values from U(-half_width, half_width), drawn on the CPU generator."""
    return (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * half_width


def _rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each clip of x (B, C, T, H, W) by its angle (radians) about the image centre."""
    b, c, t, h, w = x.shape
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    theta = torch.stack(
        [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1
    ).to(device=x.device, dtype=torch.float32)
    flat = x.reshape(b, c * t, h, w).float()
    grid = F.affine_grid(theta, [b, c * t, h, w], align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, c, t, h, w).to(x.dtype)


def augment_pair(
    x_a: torch.Tensor, x_b: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment both branches' batches (B, C, T, H, W), float in [0, 1], with shared parameters.

    - flip: horizontal mirror with probability 1/2,
    - rotate: angle ~ U(−rotate, +rotate) degrees (bilinear, border padding),
    - brightness: multiply by a factor ~ U(1 − b, 1 + b), then clip to [0, 1].
    `x_b` may be the same tensor as `x_a` (branch B reads the global frames); it is then
    transformed once.
    """
    if not augment_enabled(cfg):
        return x_a, x_b
    same = x_b is x_a
    n = x_a.shape[0]
    device = x_a.device
    branches = [x_a] if same else [x_a, x_b]
    if cfg.flip:
        mask = (torch.rand(n, generator=gen) < 0.5).to(device).view(n, 1, 1, 1, 1)
        branches = [torch.where(mask, x.flip(-1), x) for x in branches]
    if cfg.rotate > 0:
        angles = _uniform(n, gen, math.radians(cfg.rotate))
        branches = [_rotate(x, angles) for x in branches]
    if cfg.brightness > 0:
        factor = (1 + _uniform(n, gen, cfg.brightness)).to(device=device, dtype=x_a.dtype)
        factor = factor.view(n, 1, 1, 1, 1)
        branches = [(x * factor).clamp_(0.0, 1.0) for x in branches]
    if same:
        return branches[0], branches[0]
    return branches[0], branches[1]
