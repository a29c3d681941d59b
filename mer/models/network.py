"""The dual-branch 3D-CNN (MODEL.md §1), built from a ModelConfig; reads like the spec's table.

    A  global clip    → Conv3d(k=5) → LeakyReLU → MaxPool(TF-same)
    B  branch-B clip  → Conv3d(k=3) → LeakyReLU → MaxPool(TF-same)      (absent when single)
    M  concat[A, B]   → Conv3d(k=3) → LeakyReLU → MaxPool(TF-same)
    C  attention      (EC-CBAM | variants | CBAM | none)
    F  per time step  flatten (H'·W'·C) → [Dropout → Linear → LeakyReLU] × len(dense)
    G  recurrent      GRU | LSTM | none, full sequence
    S  sequence pool  MSMH | MHA | MSMH‖MHA | mean | last → one vector
    H  head           [Linear → LeakyReLU] × len(head) → Linear(num_classes)  (logits)

Input size: the per-step Linear's in_features depends on H and W, which a ModelConfig does not
hold, so `build_model` takes `input_shape=(T, H, W)` (default (30, 128, 128), or the data section
of an ExperimentConfig) and sizes every layer at build time; parameter counts are then known
without a forward pass. The built model accepts any T (all later layers work per step or over
the sequence) but only the H, W it was built for, and, with an attention pool, at most
`ATTENTION_WINDOW` steps after pooling (see there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from mer.config import ExperimentConfig, ModelConfig
from mer.errors import ConfigError
from mer.models.blocks import (
    CBAM,
    ECCBAM,
    MLP,
    MSMH,
    ConcatPool,
    ConvBlock,
    LastPool,
    MeanPool,
    MHAPool,
    Recurrent,
    tf_same_out,
)
from mer.models.init import apply_init

log = logging.getLogger(__name__)

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (30, 128, 128)

# The original max-pools MSMH's attention scores over the query axis, and MHA's output over time,
# with `MaxPooling1D(pool_size=10, padding="same")`. For T' ≤ 10 steps that is one window: the max
# over all steps, which is what MSMH and MHAPool compute. For T' > 10 the original gives
# ceil(T' / 10) windows and so ceil(T' / 10) predictions per clip (its output is (B, windows,
# classes)), which has no one-label-per-clip reading to reproduce: those sizes are refused.
ATTENTION_WINDOW = 10
WINDOWED_POOLS = frozenset({"msmh", "mha", "msmh_mha"})


class DualBranch3DCNN(nn.Module):
    """forward(x_a, x_b) → logits (B, num_classes); x_a, x_b float (B, C_in, T, H, W).

    With `branches: single` only x_a is used (x_b may be None and is ignored).
    """

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE):
        super().__init__()  # cfg is valid: a ModelConfig checks its own values when built
        t, h, w = (int(n) for n in input_shape)
        self.input_shape = (t, h, w)
        self.dual = cfg.branches == "dual"
        pool, slope = cfg.pool, cfg.leaky_slope

        # A1–A2, B1–B2: one convolution block per branch.
        self.branch_a = ConvBlock(
            cfg.in_channels, cfg.conv_a_channels, cfg.conv_a_kernel, pool, slope
        )
        self.branch_b = (
            ConvBlock(cfg.in_channels, cfg.conv_b_channels, cfg.conv_b_kernel, pool, slope)
            if self.dual
            else None
        )
        # M1–M2: channel concat, merge convolution.
        merged = cfg.conv_a_channels + (cfg.conv_b_channels if self.dual else 0)
        self.merge = ConvBlock(merged, cfg.merge_channels, cfg.merge_kernel, pool, slope)
        # C: attention on (B, C, T', H', W').
        self.attention = make_attention(cfg)
        # F: per-step dense stack on the flattened (H', W', C) map of each of the T' steps.
        self.feature_shape = tuple(tf_same_out(tf_same_out(n, pool), pool) for n in (t, h, w))
        self.pooling = cfg.pooling
        self.max_steps = ATTENTION_WINDOW if cfg.pooling in WINDOWED_POOLS else None
        if (problem := self._steps_problem(t)) is not None:
            raise ConfigError(problem)
        _, fh, fw = self.feature_shape
        n = len(cfg.dense)
        self.steps = MLP(
            fh * fw * cfg.merge_channels,
            list(cfg.dense),
            slope,
            dropout_before=[cfg.dropout] * n,
            dropout_after=[0.0] * (n - 1) + [cfg.dense_out_dropout] if n else [],
            l2=True,
        )
        # G: recurrent layer over the steps.
        if cfg.recurrent == "none":
            self.recurrent: nn.Module = nn.Identity()
            seq_features = self.steps.out_features
        else:
            self.recurrent = Recurrent(cfg.recurrent, self.steps.out_features, cfg.recurrent_units)
            seq_features = cfg.recurrent_units
        # S: sequence → one vector.
        self.pool = make_pool(cfg, seq_features)
        # H: classifier head (logits; the original's softmax is in the loss).
        m = len(cfg.head)
        self.head = MLP(
            self.pool.out_features,
            list(cfg.head),
            slope,
            dropout_before=[cfg.head_in_dropout] + [0.0] * (m - 1) if m else [],
            dropout_after=[cfg.head_dropout] * m,
            out_features=cfg.num_classes,
            final_dropout=0.0 if m else cfg.head_in_dropout,
        )

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x_a, x_b)
        x = self.branch_a(x_a)  # A1–A2
        if self.branch_b is not None:
            x = torch.cat([x, self.branch_b(x_b)], dim=1)  # B1–B2, M1
        x = self.merge(x)  # M2
        x = self.attention(x)  # C
        x = x.permute(0, 2, 3, 4, 1).flatten(2)  # (B, T', H'·W'·C) in Keras's flatten order
        x = self.steps(x)  # F
        x = self.recurrent(x)  # G
        x = self.pool(x)  # S
        return self.head(x)  # H

    def _steps_problem(self, t: int) -> str | None:
        """Why T frames are too many for the attention pool's window (None when they are not)."""
        if self.max_steps is None:
            return None
        p = self.branch_a.pool.kernel
        t1 = tf_same_out(t, p)
        steps = tf_same_out(t1, p)
        if steps <= self.max_steps:
            return None
        return (
            f"data.frames.count: {t} frames give T' = {steps} steps after the two "
            f"model.pool = {p} poolings ({t} → {t1} → {steps}), but model.pooling: "
            f"{self.pooling} follows the original, which max-pools the attention over windows of "
            f"{self.max_steps} steps (MaxPooling1D(pool_size={self.max_steps}, padding='same')) "
            f"and so would give ceil({steps} / {self.max_steps}) = {-(-steps // self.max_steps)} "
            f"predictions per clip; use data.frames.count ≤ {self.max_steps * p * p} at "
            f"model.pool = {p}, a larger model.pool, or model.pooling: last or mean"
        )

    def _check_input(self, x_a: torch.Tensor, x_b: torch.Tensor | None) -> None:
        """Shape checks on Python ints only (no host sync): a clear message instead of a matmul
        shape error deep inside."""
        _, h, w = self.input_shape
        if x_a.dim() == 5 and (problem := self._steps_problem(x_a.shape[2])) is not None:
            raise ValueError(f"model input x_a {tuple(x_a.shape)}: {problem}")
        if x_a.dim() != 5 or tuple(x_a.shape[-2:]) != (h, w):
            raise ValueError(
                f"model input x_a: expected (B, C, T, {h}, {w}) (the model was built for "
                f"input_shape={self.input_shape}), got {tuple(x_a.shape)}"
            )
        if self.dual:
            if x_b is None:
                raise ValueError("dual-branch model: forward(x_a, x_b) needs the branch-B clip")
            if x_b.shape != x_a.shape:
                raise ValueError(
                    f"model input x_b: expected the shape of x_a {tuple(x_a.shape)}, "
                    f"got {tuple(x_b.shape)}"
                )

    def l2_parameters(self) -> list[nn.Parameter]:
        return l2_parameters(self)


# ------------------------------------------------------------------------------ factories


def make_attention(cfg: ModelConfig) -> nn.Module:
    c, r = cfg.merge_channels, cfg.attention_reduction
    if cfg.attention == "none":
        return nn.Identity()
    if cfg.attention == "cbam":
        return CBAM(c, r)
    return ECCBAM(c, r, cfg.leaky_slope, variant=cfg.attention)


def make_pool(cfg: ModelConfig, d: int) -> nn.Module:
    source = (
        "model.recurrent_units"
        if cfg.recurrent != "none"
        else "the last model.dense width, since model.recurrent is none"
    )
    where = f"the sequence has d = {d} features ({source})"
    if cfg.pooling in ("msmh", "msmh_mha"):
        for s in cfg.msmh_scales:
            if s < 1 or d // s < 1:
                raise ConfigError(
                    f"model.msmh_scales: scale {s} gives a head of d // {s} = "
                    f"{d // s if s > 0 else 'no'} features; {where}, so every scale must be "
                    f"between 1 and {d}"
                )
        if not cfg.msmh_scales:
            raise ConfigError("model.msmh_scales: expected at least one scale for pooling: msmh")
    if cfg.pooling in ("mha", "msmh_mha"):
        key_dim = cfg.mha_key_dim or d // cfg.mha_heads
        if key_dim < 1:
            raise ConfigError(
                f"model.mha_heads: {cfg.mha_heads} heads of d // heads = 0 features ({where}); "
                "use fewer heads or set model.mha_key_dim"
            )
        mha = MHAPool(d, cfg.mha_heads, key_dim, causal=cfg.mha_causal)
    if cfg.pooling == "msmh":
        return MSMH(d, list(cfg.msmh_scales))
    if cfg.pooling == "mha":
        return mha
    if cfg.pooling == "msmh_mha":
        return ConcatPool(MSMH(d, list(cfg.msmh_scales)), mha)
    if cfg.pooling == "mean":
        return MeanPool(d)
    return LastPool(d)


# ------------------------------------------------------------------------------ public API


def build_model(
    cfg: ModelConfig | ExperimentConfig, input_shape: Sequence[int] | None = None
) -> DualBranch3DCNN:
    """Build and initialise (model.init) the network for clips of `input_shape` = (T, H, W).

    `input_shape` defaults to (data.frames.count, data.size, data.size) for an ExperimentConfig
    and to (30, 128, 128) for a ModelConfig. Seed torch beforehand for reproducible weights.
    Works under `torch.device("meta")` (for counting parameters and FLOPs; init is skipped).
    """
    if isinstance(cfg, ExperimentConfig):
        if input_shape is None:
            input_shape = (cfg.data.frames.count, cfg.data.size, cfg.data.size)
        cfg = cfg.model
    if input_shape is None:
        input_shape = DEFAULT_INPUT_SHAPE
    if len(input_shape) != 3 or any(int(n) < 1 for n in input_shape):
        raise ConfigError(f"input_shape: expected (T, H, W) of positive sizes, got {input_shape}")
    model = DualBranch3DCNN(cfg, input_shape)
    return apply_init(model, cfg.init)


def l2_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Kernels the original regularises with L2 (0.01·Σw², i.e. coupled weight decay 0.02):
    every per-step Linear and the first Linear of each channel-attention MLP (biases excluded)."""
    return [m.weight for m in model.modules() if getattr(m, "l2", False)]


def set_recurrent_impl(model: nn.Module, impl: str) -> nn.Module:
    """Run the GRU/LSTM as nn.GRU/nn.LSTM ("torch", default) or as explicit per-step matmuls
    ("loop": traceable by torch.func.vmap and torch.compile). Same parameters, same outputs."""
    if impl not in ("torch", "loop"):
        raise ValueError(f"recurrent impl: expected torch or loop, got {impl!r}")
    for module in model.modules():
        if isinstance(module, Recurrent):
            module.impl = impl
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level part (branch_a, branch_b, merge, attention, steps, ...)."""
    return {name: count_parameters(child) for name, child in model.named_children()}
