"""Faster ways to run the same training step, measured by `python -m bench.throughput`.

Each piece computes the same function as the plain model (checked on CPU by
tests/test_bench_smoke.py and on the GPU by the benchmark's `check` column); none changes the
optimisation. State dicts stay those of the plain model: module swaps reuse the original Parameter
objects under the original names.

- `StepGRU` / `use_step_gru`: nn.GRU as an explicit loop over the T' = 2..8 steps. `torch.func.vmap`
  has no batching rule for `aten::gru` (nor cuDNN's RNN), so stacked models need it.
- `TimeUnfoldConv3d` / `use_time_unfold_convs`: a stride-1 Conv3d with a (kT, kH, kW) kernel as one
  Conv2d over B·T images whose channels are the kT time-shifted frames (kT·C channels, zero-padded
  to a multiple of 8 for tensor cores). cuDNN's 2D kernels are far better tuned than its 3D ones,
  and the first convolution's 3 input channels become 15 (→ 16) (PERFORMANCE.md).
- `PaddedConv3d` / `pad_input_channels`: the first convolutions' 3 input channels padded to 8 with
  zero weights (a constant, not a parameter) and zero input channels: exactly the same outputs.
- `clips_to_input`: uint8 (B, T, H, W, C) clips → model input, optionally padded and in bf16.
- `StackedModels`: M models of one architecture trained at once (e.g. M folds), parameters stacked
  along a leading axis and the forward vmapped (`randomness="different"`: each member draws its
  own dropout masks). Adam is elementwise, so one Adam over the stacked tensors is M independent
  Adams; the loss is the sum of the members' losses, so each member gets its own gradient.
- `GraphedStep`: a whole training step (forward, backward, optimiser) captured as one CUDA graph
  and replayed per batch, removing per-kernel launch overhead at small batches.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mer.training.loss import l2_parameters

log = logging.getLogger(__name__)

__all__ = [
    "GraphedStep",
    "PaddedConv3d",
    "StackedModels",
    "StepGRU",
    "TimeUnfoldConv3d",
    "clips_to_input",
    "pad_input_channels",
    "stacked_inputs",
    "stacked_loss",
    "use_step_gru",
    "use_time_unfold_convs",
]


# ------------------------------------------------------------------------------------- GRU
class StepGRU(nn.Module):
    """One-layer, batch_first nn.GRU written as a step loop over the sequence (vmap-able).

    Shares the GRU's Parameter objects and names (weight_ih_l0, weight_hh_l0, bias_ih_l0,
    bias_hh_l0), gate order r, z, n, PyTorch's formula:
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
    """

    def __init__(self, gru: nn.GRU):
        super().__init__()
        if gru.num_layers != 1 or gru.bidirectional or not gru.batch_first or not gru.bias:
            raise ValueError("StepGRU replaces one-layer, unidirectional, batch_first GRUs only")
        self.hidden_size = gru.hidden_size
        self.weight_ih_l0 = gru.weight_ih_l0
        self.weight_hh_l0 = gru.weight_hh_l0
        self.bias_ih_l0 = gru.bias_ih_l0
        self.bias_hh_l0 = gru.bias_hh_l0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = x.shape[1]
        gi = F.linear(x, self.weight_ih_l0, self.bias_ih_l0)  # all steps at once
        h = x.new_zeros(x.shape[0], self.hidden_size)
        outs = []
        for t in range(steps):
            gh = F.linear(h, self.weight_hh_l0, self.bias_hh_l0)
            i_r, i_z, i_n = gi[:, t].chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs, dim=1), h.unsqueeze(0)


def use_step_gru(model: nn.Module) -> int:
    """Replace every nn.GRU in `model` by a StepGRU sharing its parameters; returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GRU):
                setattr(parent, name, StepGRU(child))
                count += 1
    return count


# ------------------------------------------------------------------------------ convolutions
def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple if multiple > 1 else n


def _plain_conv3d(conv: nn.Module) -> bool:
    """A Conv3d we may rewrite: stride 1, dilation 1, one group, odd kernel, 'same' padding."""
    if type(conv) is not nn.Conv3d:
        return False
    k = conv.kernel_size
    pad = conv.padding
    if isinstance(pad, str):
        pad = tuple(n // 2 for n in k) if pad == "same" and all(n % 2 for n in k) else None
    return (
        conv.stride == (1, 1, 1)
        and conv.dilation == (1, 1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and all(n % 2 == 1 for n in k)
        and pad == tuple(n // 2 for n in k)
    )


def _pad_channels(x: torch.Tensor, n: int) -> torch.Tensor:
    """x with n zero channels appended (dim 1). F.pad keeps the memory format (channels_last_3d
    stays so) and, unlike layout queries, works inside vmap."""
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, n))


class PaddedConv3d(nn.Module):
    """Conv3d whose input channels are padded to `channels` with zero weights and zero inputs.

    The padded weight columns are built from the original parameter in each forward (a constant
    zero extension), so gradients reach only the real weights and the outputs are those of the
    plain convolution. Accepts inputs with the original or the padded channel count (data paths
    that pad while converting, see `clips_to_input`, skip the copy here).
    """

    def __init__(self, conv: nn.Conv3d, channels: int):
        super().__init__()
        if channels < conv.in_channels:
            raise ValueError(f"cannot pad {conv.in_channels} input channels to {channels}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.in_channels = conv.in_channels
        self.channels = channels
        self.padding = conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.channels - self.in_channels
        if x.shape[1] == self.in_channels and extra:
            x = _pad_channels(x, extra)
        elif x.shape[1] != self.channels:
            raise ValueError(
                f"PaddedConv3d: expected {self.in_channels} or {self.channels} input channels, "
                f"got {x.shape[1]}"
            )
        weight = F.pad(self.weight, (0, 0, 0, 0, 0, 0, 0, extra)) if extra else self.weight
        return F.conv3d(x, weight, self.bias, padding=self.padding)


def pad_input_channels(model: nn.Module, multiple: int = 8) -> int:
    """Wrap each Conv3d that reads the model input (`in_channels` of the first convolutions,
    model.branch_a.conv / branch_b.conv) in a PaddedConv3d; returns the padded channel count."""
    convs = [getattr(getattr(model, name, None), "conv", None) for name in ("branch_a", "branch_b")]
    convs = [c for c in convs if isinstance(c, nn.Conv3d)]
    if not convs:
        raise ValueError("pad_input_channels: model has no branch_a/branch_b Conv3d")
    channels = _round_up(convs[0].in_channels, multiple)
    for name in ("branch_a", "branch_b"):
        block = getattr(model, name, None)
        if block is not None and isinstance(getattr(block, "conv", None), nn.Conv3d):
            block.conv = PaddedConv3d(block.conv, channels)
    return channels


class TimeUnfoldConv3d(nn.Module):
    """A stride-1 'same' Conv3d computed as one Conv2d over the B·T frames.

    out[b, :, t] = Σ_dt conv2d(x[b, :, t + dt − p], W[:, :, dt]) = conv2d(stack_dt(x[:, :, t+dt−p]),
    W reshaped to (O, kT·C, kH, kW)), with x zero-padded by p = kT // 2 in time. The stacked input
    has kT·C channels (time-major), zero-padded to a multiple of `multiple`. For channels_last_3d
    input the stacked frames come out as channels_last 2D images and the result as channels_last_3d
    again, without copies beyond the stacking itself.
    """

    def __init__(self, conv: nn.Conv3d, multiple: int = 8):
        super().__init__()
        if not _plain_conv3d(conv):
            raise ValueError(f"TimeUnfoldConv3d: unsupported convolution {conv}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.kernel = conv.kernel_size
        self.in_channels = conv.in_channels
        self.out_channels = conv.out_channels
        self.stacked = self.kernel[0] * self.in_channels
        self.channels = _round_up(self.stacked, multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        kt, kh, kw = self.kernel
        pt = kt // 2
        kind = x.device.type
        if torch.is_autocast_enabled(kind) and x.dtype == torch.float32:
            # conv2d would cast anyway: cast before stacking moves half the bytes
            x = x.to(torch.get_autocast_dtype(kind))
        xp = F.pad(x, (0, 0, 0, 0, pt, pt)) if pt else x
        parts = [xp[:, :, dt : dt + t] for dt in range(kt)]
        extra = self.channels - self.stacked
        if extra:  # zero channels ride on the last slice: one cat, layout kept
            parts[-1] = _pad_channels(parts[-1], extra)
        stacked = torch.cat(parts, dim=1)  # (B, kT·C + pad, T, H, W), channel = dt·C + c
        frames = stacked.transpose(1, 2).reshape(b * t, self.channels, h, w)
        weight = self.weight.transpose(1, 2).reshape(self.out_channels, self.stacked, kh, kw)
        if extra:
            weight = F.pad(weight, (0, 0, 0, 0, 0, extra))
        out = F.conv2d(frames, weight, self.bias, padding=(kh // 2, kw // 2))
        return out.view(b, t, self.out_channels, h, w).transpose(1, 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel={self.kernel}, "
            f"as conv2d over {self.channels} stacked channels"
        )


def use_time_unfold_convs(model: nn.Module, multiple: int = 8) -> int:
    """Replace every rewritable Conv3d (stride 1, odd kernel, 'same') by a TimeUnfoldConv3d
    sharing its parameters; returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _plain_conv3d(child):
                setattr(parent, name, TimeUnfoldConv3d(child, multiple))
                count += 1
    return count


# ------------------------------------------------------------------------------------ inputs
def clips_to_input(
    u8: torch.Tensor,
    *,
    channels: int | None = None,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
) -> torch.Tensor:
    """uint8 clips (B, T, H, W, C) → (B, C', T, H, W) in [0, 1] as `dtype`, channels zero-padded
    to `channels` (default: none); channels_last_3d memory (free: it is the source layout)."""
    x = u8.to(dtype).div_(255.0)
    c = x.shape[-1]
    if channels is not None and channels > c:
        x = F.pad(x, (0, channels - c))
    x = x.permute(0, 4, 1, 2, 3)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def stacked_inputs(
    u8: torch.Tensor,
    idx: torch.Tensor,
    *,
    channels: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-member batches from one resident clip pool: u8 (N, T, H, W, C), idx (M, B) →
    (M, B, C', T, H, W) whose memory is (B, T, H, W, M, C'): vmap's grouped convolution then
    sees a channels_last_3d (B, M·C', T, H, W) input without a copy."""
    m, b = idx.shape
    x = u8.index_select(0, idx.t().reshape(-1))  # (B·M, T, H, W, C), sample-major
    x = x.to(dtype).div_(255.0)
    c = x.shape[-1]
    if channels is not None and channels > c:
        x = F.pad(x, (0, channels - c))
        c = channels
    n, t, h, w, _ = x.shape
    x = x.view(b, m, t, h, w, c).permute(0, 2, 3, 4, 1, 5).contiguous()  # (B, T, H, W, M, C)
    return x.permute(4, 0, 5, 1, 2, 3)  # logical (M, B, C, T, H, W)


# --------------------------------------------------------------------------- stacked models
class StackedModels:
    """M copies of one architecture with their own weights, run as one vmapped model.

    `params` holds one leaf tensor per parameter name with a leading member axis (give these to
    the optimiser). GRUs are replaced by StepGRU before stacking. `member_state_dict(i)` returns a
    state dict loadable into the plain model (names of nn.GRU preserved).

    Mixed precision: autocast does not reach inside vmap (torch 2.13, CPU: a vmapped conv3d under
    bf16 autocast ran in fp32, and failed on bf16 inputs with fp32 bias), so `compute_dtype`
    casts weights, buffers and inputs explicitly in each forward; the fp32 stacked parameters
    stay the master copy that Adam updates (gradients flow back through the casts). Ops that
    autocast would keep in fp32 (softmax, sum) then run on bf16 tensors: same order of error.
    """

    def __init__(self, models: Sequence[nn.Module], compute_dtype: torch.dtype | None = None):
        if not models:
            raise ValueError("StackedModels needs at least one model")
        models = list(models)
        for m in models:
            use_step_gru(m)
        self.size = len(models)
        self.compute_dtype = compute_dtype
        params, buffers = stack_module_state(models)
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self.base = copy.deepcopy(models[0]).to("meta")
        self.keys = set(self.base.state_dict())  # persistent buffers only
        self.l2_names = self._l2_names(models[0])
        base = self.base

        def one(p: dict, b: dict, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (xa, xb))

        self._forward = vmap(one, in_dims=(0, 0, 0, 0), randomness="different")
        self._forward_shared_b = vmap(one, in_dims=(0, 0, 0, None), randomness="different")

    @staticmethod
    def _l2_names(model: nn.Module) -> list[str]:
        return [name for name, _ in l2_parameters(model)]

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def l2_tensors(self) -> list[torch.Tensor]:
        return [self.params[n] for n in self.l2_names]

    def train(self, mode: bool = True) -> StackedModels:
        self.base.train(mode)
        return self

    def eval(self) -> StackedModels:
        return self.train(False)

    def __call__(self, xa: torch.Tensor, xb: torch.Tensor | None) -> torch.Tensor:
        """xa, xb (M, B, C, T, H, W) → logits (M, B, K), in compute_dtype if one is set."""
        params, buffers = self.params, self.buffers
        dtype = self.compute_dtype
        if dtype is not None:
            params, buffers = _cast_floats(params, dtype), _cast_floats(buffers, dtype)
            xa = xa.to(dtype)
            xb = None if xb is None else xb.to(dtype)
        if xb is None:
            return self._forward_shared_b(params, buffers, xa, None)
        return self._forward(params, buffers, xa, xb)

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights under the plain model's names (StepGRU keeps nn.GRU's names)."""
        out = {k: v[i].detach().clone() for k, v in self.params.items()}
        out.update({k: v[i].detach().clone() for k, v in self.buffers.items() if k in self.keys})
        return out


def _cast_floats(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def stacked_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor | None,
    l2_tensors: Sequence[torch.Tensor],
    l2: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over members of (weighted CE of member m + l2·Σw² of member m); returns (loss, ce per
    member (M,)). Same per-member terms as mer.training.loss.weighted_ce / l2_penalty."""
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (M, B)
    ce = (nll * weights[y]).mean(dim=1) if weights is not None else nll.mean(dim=1)
    loss = ce.sum()
    if l2 and l2_tensors:
        loss = loss + l2 * torch.stack([t.float().pow(2).sum() for t in l2_tensors]).sum()
    return loss, ce


# ------------------------------------------------------------------------------ CUDA graphs
class GraphedStep:
    """Capture `step()` (a full training step reading static input tensors) as one CUDA graph.

    Warm-up runs on a side stream (as torch.cuda.graphs asks), then the step is captured; the
    warm-up's updates are then undone in place: parameters copied back and the optimiser state
    zeroed (the initial state of Adam-family optimisers; needs `capturable=True`). So the first
    replay starts from the same state an eager loop would. Each call replays the graph and returns
    the tensors `step()` returned during capture (overwritten by every replay: clone to keep).
    """

    def __init__(
        self,
        step: Callable[[], Any],
        params: Sequence[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        warmup: int = 3,
    ):
        params = list(params)
        snapshot = [p.detach().clone() for p in params]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream().wait_stream(side)
        optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = step()
        with torch.no_grad():
            for p, p0 in zip(params, snapshot, strict=True):
                p.copy_(p0)
            for state in optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()

    def __call__(self) -> Any:
        self.graph.replay()
        return self.outputs
