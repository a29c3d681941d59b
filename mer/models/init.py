"""Keras-equivalent weight initialisation (MODEL.md §5), selectable with `model.init: keras|torch`.

PyTorch's defaults (kaiming_uniform with a=√5, biases uniform in ±1/√fan_in) differ from Keras's
(glorot_uniform kernels, zero biases, he_normal where the original asks for it). Which Keras rule a
layer gets is declared where the layer is built (`keras_init` tag on Linear/Conv3d, or a
`keras_init_()` method on blocks whose Keras layers have other shapes), so this module only knows
the rules themselves.

Fans follow Keras: a Linear weight (out, in) has fan_in = in, fan_out = out; a Conv3d weight
(out, in, k, k, k) has fan_in = in·k³, fan_out = out·k³ (Keras's (k, k, k, in, out) kernel).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

log = logging.getLogger(__name__)

# Keras's he_normal draws from a normal truncated at ±2σ and divides σ by the standard deviation of
# a standard normal truncated at ±2 (0.8796…), so the drawn values have std √(2 / fan_in).
TRUNCATION_STD = 0.87962566103423978


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a PyTorch Linear (out, in) or ConvNd (out, in, *k) weight."""
    if weight.dim() < 2:
        raise ValueError(f"fans of a {weight.dim()}-d tensor are not defined")
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def he_normal_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """Keras he_normal: truncated normal (±2σ), σ = √(2/fan_in) / 0.8796…"""
    std = math.sqrt(2.0 / fan_in) / TRUNCATION_STD
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


@torch.no_grad()
def glorot_uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Keras glorot_uniform: U(±√(6 / (fan_in + fan_out)))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return nn.init.uniform_(tensor, -limit, limit)


@torch.no_grad()
def keras_init_(model: nn.Module) -> nn.Module:
    """Re-initialise `model` in place the way the original Keras code does; returns it.

    Order: tagged Linear/Conv3d layers first (untagged ones get Keras's default glorot_uniform),
    then blocks with their own `keras_init_()` (which may override their children). Meta-device
    models (used for counting) are left alone.
    """
    if any(p.is_meta for p in model.parameters()):
        return model
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            fan_in, fan_out = fans(module.weight)
            rule = getattr(module, "keras_init", "glorot_uniform")
            if rule == "he_normal":
                he_normal_(module.weight, fan_in)
            elif rule == "glorot_uniform":
                glorot_uniform_(module.weight, fan_in, fan_out)
            else:
                raise ValueError(f"unknown keras_init rule {rule!r} on {module}")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for module in model.modules():
        if hasattr(module, "keras_init_"):
            module.keras_init_()
    return model


def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """`keras`: the original's initialisers; `torch`: PyTorch's defaults (as constructed)."""
    if scheme == "keras":
        return keras_init_(model)
    if scheme == "torch":
        return model
    raise ValueError(f"unknown init scheme {scheme!r}; expected keras or torch")
