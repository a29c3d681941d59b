"""The original Keras model's weight layout, read off a mer model (for `mer.models.keras_weights`).

Keras 2 saves (and loads) the weights of a functional model layer by layer in `model.layers`
order (topological), each layer's weights in its own order. For the authors' model that is:
Conv3D k5 (branch A), Conv3D k3 (branch B), Conv3D (merge), CBAMModule (fc_avg Dense k, b,
Dense k, b; fc_max the same; spatial Conv3D k, b), one TimeDistributed(Dense) per `model.dense`
width, GRU (kernel, recurrent_kernel, bias (2, 3u)), MultiScaleMultiHeadAttention (per scale:
wq, wk, wv, dense, each k, b), one Dense per `model.head` width and the output Dense.

Layer and weight names replay Keras's per-session name counters in the seed script's
construction order, so a preset model gets exactly the names of the authors' files
(docs/design/MODEL.md §8). Loading never relies on them: Keras names depend on what else the
session built, so `load_keras_weights` goes by order and shape, as Keras itself does.

Mapping rules (Keras → torch): Conv3D kernel (kd, kh, kw, in, out) → (out, in, kd, kh, kw);
Dense kernel (in, out) → (out, in); GRU gate blocks z, r, h → r, z, n, bias row 0 → bias_ih,
row 1 → bias_hh; MSMH's eight q | k | v Denses are row blocks of mer's fused `pool.qkv`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from mer.errors import ConfigError
from mer.models.blocks import CBAM, ECCBAM, MSMH, Recurrent

KERAS_SLOPE = 0.2  # every LeakyReLU of the original: LeakyReLU(alpha=0.2)
KERAS_ATTENTION = ("ec_cbam", "ec_cbam_sum")  # CBAMModule: CASME II/SAMM/CAS(ME)^3, SMIC scripts


@dataclass(frozen=True)
class KerasWeight:
    """One Keras weight and the mer state_dict entries it becomes."""

    name: str  # the `weight_names` entry, e.g. "conv3d/kernel:0"
    shape: tuple[int, ...]  # Keras shape
    rule: str  # conv | dense | copy | gru_kernel | gru_bias
    keys: tuple[str, ...]  # mer state_dict keys: two for gru_bias (ih, hh), else one
    rows: tuple[int, int] | None = None  # rows [start, stop) of keys[0]; None: the whole tensor

    @property
    def role(self) -> str:
        """kernel / bias / recurrent_kernel: the part of the name that no counter changes."""
        return self.name.rsplit("/", 1)[-1].split(":")[0]

    def target(self) -> str:
        """The mer entry, as an error message names it."""
        if self.rows is not None:
            return f"{self.keys[0]}[{self.rows[0]}:{self.rows[1]}]"
        return " and ".join(self.keys)


@dataclass(frozen=True)
class KerasLayer:
    name: str  # Keras layer name = HDF5 group
    what: str  # which part of mer's model, and the config keys that size it
    weights: tuple[KerasWeight, ...]


@dataclass(frozen=True)
class KerasLayout:
    layer_names: tuple[str, ...]  # every layer of model.layers, with or without weights
    layers: tuple[KerasLayer, ...]  # the layers with weights, in Keras's load order

    def shapes(self) -> list[list[tuple[int, ...]]]:
        return [[w.shape for w in layer.weights] for layer in self.layers]


# ------------------------------------------------------------------------------ mapping rules


def _gates(a: np.ndarray, axis: int) -> np.ndarray:
    """Swap the first two of three gate blocks: Keras z, r, h ↔ torch r, z, n (an involution)."""
    first, second, third = np.split(a, 3, axis=axis)
    return np.concatenate([second, first, third], axis=axis)


def to_mer(weight: KerasWeight, a: np.ndarray) -> list[np.ndarray]:
    """A Keras array → the torch-layout array(s) for `weight.keys` (or its rows)."""
    if weight.rule == "conv":
        return [a.transpose(4, 3, 0, 1, 2)]
    if weight.rule == "dense":
        return [a.T]
    if weight.rule == "gru_kernel":
        return [_gates(a, 1).T]
    if weight.rule == "gru_bias":
        return [_gates(a[0], 0), _gates(a[1], 0)]
    return [a]


def to_keras(weight: KerasWeight, parts: list[np.ndarray]) -> np.ndarray:
    """The inverse of `to_mer`: torch-layout array(s) → the Keras array."""
    if weight.rule == "conv":
        return parts[0].transpose(2, 3, 4, 1, 0)
    if weight.rule == "dense":
        return parts[0].T
    if weight.rule == "gru_kernel":
        return _gates(parts[0].T, 1)
    if weight.rule == "gru_bias":
        return np.stack([_gates(parts[0], 0), _gates(parts[1], 0)])
    return parts[0]


# ------------------------------------------------------------------------------ counterpart check


def check_keras_counterpart(model: nn.Module) -> None:
    """ConfigError unless `model` is built like the original Keras model (sizes may differ)."""
    problems = []
    if getattr(model, "branch_b", None) is None:
        problems.append("model.branches: single (the Keras model has two input convolutions)")
    attention = getattr(model, "attention", None)
    if not isinstance(attention, ECCBAM) or attention.variant not in KERAS_ATTENTION:
        name = (
            attention.variant
            if isinstance(attention, ECCBAM)
            else ("cbam" if isinstance(attention, CBAM) else "none")
        )
        problems.append(
            f"model.attention: {name} (the Keras CBAMModule is ec_cbam, or ec_cbam_sum in the "
            "SMIC script)"
        )
    recurrent = getattr(model, "recurrent", None)
    if not (isinstance(recurrent, Recurrent) and recurrent.kind == "gru"):
        kind = recurrent.kind if isinstance(recurrent, Recurrent) else "none"
        problems.append(f"model.recurrent: {kind} (the Keras model has a GRU)")
    if not isinstance(getattr(model, "pool", None), MSMH):
        problems.append(
            f"model.pooling: {getattr(model, 'pooling', type(model.pool).__name__)} (the Keras "
            "model pools with MSMH: model.pooling: msmh)"
        )
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    if slopes - {KERAS_SLOPE}:
        problems.append(f"model.leaky_slope: {sorted(slopes)} (the Keras model uses 0.2)")
    if problems:
        raise ConfigError(
            "this model has no counterpart in the original Keras model, so Keras weights cannot "
            "stand for it: " + "; ".join(problems)
        )


# ------------------------------------------------------------------------------ the layout


class _Names:
    """Keras's per-prefix name counter: dense, dense_1, …; Input layers count from 1."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str, first: int = 0) -> str:
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        n += first
        return f"{prefix}_{n}" if n else prefix


def _shape(sd: dict[str, tuple[int, ...]], key: str, rule: str) -> tuple[int, ...]:
    s = sd[key]
    if rule == "conv":
        return (s[2], s[3], s[4], s[1], s[0])
    if rule in ("dense", "gru_kernel"):
        return (s[1], s[0])
    if rule == "gru_bias":
        return (2, s[0])
    return s


def keras_layout(model: nn.Module) -> KerasLayout:
    """The Keras layer list (names, order, shapes, mer targets) of a model built like the
    original; ConfigError (`check_keras_counterpart`) otherwise. Works on meta-device models."""
    check_keras_counterpart(model)
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    new = _Names()
    layers: list[KerasLayer] = []

    def kernel_bias(scope: str, prefix: str, kind: str) -> tuple[KerasWeight, KerasWeight]:
        """A Keras Dense or Conv layer's kernel (reshaped as `kind` says) and bias."""
        return (
            KerasWeight(
                f"{scope}/kernel:0",
                _shape(sd, f"{prefix}.weight", kind),
                kind,
                (f"{prefix}.weight",),
            ),
            KerasWeight(f"{scope}/bias:0", sd[f"{prefix}.bias"], "copy", (f"{prefix}.bias",)),
        )

    def dense(scope: str, prefix: str) -> tuple[KerasWeight, KerasWeight]:
        return kernel_bias(scope, prefix, "dense")

    def conv(scope: str, prefix: str) -> tuple[KerasWeight, KerasWeight]:
        return kernel_bias(scope, prefix, "conv")

    # The SMIC script feeds its one Input to both convolutions (the only script with the sum gate).
    inputs = [
        new("input", first=1) for _ in range(1 if model.attention.variant == "ec_cbam_sum" else 2)
    ]
    branch = [(new("conv3d"), new("leaky_re_lu"), new("max_pooling3d")) for _ in range(2)]
    order = [*inputs, *(name for step in zip(*branch) for name in step), new("concatenate")]
    merge = (new("conv3d"), new("leaky_re_lu"), new("max_pooling3d"))
    order += merge
    for (conv_name, *_), prefix, what in zip(
        (*branch, merge),
        ("branch_a.conv", "branch_b.conv", "merge.conv"),
        (
            "branch A Conv3d (model.in_channels → model.conv_a_channels, model.conv_a_kernel)",
            "branch B Conv3d (model.in_channels → model.conv_b_channels, model.conv_b_kernel)",
            "merge Conv3d (model.conv_a_channels + model.conv_b_channels → "
            "model.merge_channels, model.merge_kernel)",
        ),
    ):
        layers.append(KerasLayer(conv_name, what, conv(conv_name, prefix)))

    cbam = new("cbam_module")
    new("channel_attention"), new("global_average_pooling3d"), new("global_max_pooling3d")
    fcs = []
    for _ in ("fc_avg", "fc_max"):
        fcs += [new("dense"), new("leaky_re_lu"), new("dense")]
        new("sequential")
    new("activation")
    spatial = f"{cbam}/{new('spatial_attention')}/{new('conv3d')}"
    cbam_weights: list[KerasWeight] = []
    for mlp, (first, _, second) in zip(("fc_avg", "fc_max"), (fcs[:3], fcs[3:])):
        cbam_weights += dense(first, f"attention.channel.{mlp}.0")
        cbam_weights += dense(second, f"attention.channel.{mlp}.2")
    cbam_weights += conv(spatial, "attention.spatial.conv")
    layers.append(
        KerasLayer(
            cbam, "EC-CBAM (model.merge_channels, model.attention_reduction)", tuple(cbam_weights)
        )
    )
    new("flatten")
    order += [cbam, new("time_distributed")]

    _, fh, fw = model.feature_shape
    linear_no = 0
    for i, module in enumerate(model.steps.layers):
        if isinstance(module, nn.Linear):
            new("dense")  # the wrapped Dense; its weights carry the TimeDistributed's name
            layer = new("time_distributed")
            linear_no += 1
            what = f"per-step Linear {linear_no} (model.dense[{linear_no - 1}])"
            if linear_no == 1:
                what += (
                    f"; its input is the pooled map H'·W'·model.merge_channels = {fh}·{fw}·C of "
                    f"the model's input_shape {tuple(model.input_shape)}"
                )
            layers.append(KerasLayer(layer, what, dense(layer, f"steps.layers.{i}")))
            order.append(layer)
        else:
            order.append(new("dropout" if isinstance(module, nn.Dropout) else "leaky_re_lu"))

    gru, cell = new("gru"), new("gru_cell")
    rnn = "recurrent.rnn"
    layers.append(
        KerasLayer(
            gru,
            "GRU (model.recurrent_units; input: the last model.dense width)",
            (
                KerasWeight(
                    f"{gru}/{cell}/kernel:0",
                    _shape(sd, f"{rnn}.weight_ih_l0", "gru_kernel"),
                    "gru_kernel",
                    (f"{rnn}.weight_ih_l0",),
                ),
                KerasWeight(
                    f"{gru}/{cell}/recurrent_kernel:0",
                    _shape(sd, f"{rnn}.weight_hh_l0", "gru_kernel"),
                    "gru_kernel",
                    (f"{rnn}.weight_hh_l0",),
                ),
                KerasWeight(
                    f"{gru}/{cell}/bias:0",
                    _shape(sd, f"{rnn}.bias_ih_l0", "gru_bias"),
                    "gru_bias",
                    (f"{rnn}.bias_ih_l0", f"{rnn}.bias_hh_l0"),
                ),
            ),
        )
    )

    msmh = new("multi_scale_multi_head_attention")
    pool: MSMH = model.pool
    d_in, total = pool.d_model, pool.total
    msmh_weights: list[KerasWeight] = []
    start = 0
    for i, d in enumerate(pool.dims):
        head = f"{msmh}/{new('single_head_attention')}"
        for part in range(3):  # wq, wk, wv: rows of the fused q | k | v projection
            rows = (part * total + start, part * total + start + d)
            scope = f"{head}/{new('dense')}"
            msmh_weights += [
                KerasWeight(f"{scope}/kernel:0", (d_in, d), "dense", ("pool.qkv.weight",), rows),
                KerasWeight(f"{scope}/bias:0", (d,), "copy", ("pool.qkv.bias",), rows),
            ]
        msmh_weights += dense(f"{head}/{new('dense')}", f"pool.out.{i}")
        start += d
    new("concatenate")
    layers.append(
        KerasLayer(msmh, "MSMH (model.msmh_scales over model.recurrent_units)", tuple(msmh_weights))
    )
    order += [gru, msmh]

    linears = [i for i, m in enumerate(model.head.layers) if isinstance(m, nn.Linear)]
    for i, module in enumerate(model.head.layers):
        if isinstance(module, nn.Linear):
            layer = new("dense")
            j = linears.index(i)
            what = (
                "output Linear (model.num_classes)"
                if j == len(linears) - 1
                else f"head Linear {j + 1} (model.head[{j}])"
            )
            layers.append(KerasLayer(layer, what, dense(layer, f"head.layers.{i}")))
            order.append(layer)
        else:
            order.append(new("dropout" if isinstance(module, nn.Dropout) else "leaky_re_lu"))

    layout = KerasLayout(tuple(order), tuple(layers))
    _check_coverage(layout, sd)
    return layout


def _check_coverage(layout: KerasLayout, sd: dict[str, tuple[int, ...]]) -> None:
    """Every state_dict entry is filled exactly once (rows of the fused qkv included)."""
    rows: dict[str, int] = {}
    for layer in layout.layers:
        for w in layer.weights:
            for key in w.keys:
                rows[key] = rows.get(key, 0) + (w.rows[1] - w.rows[0] if w.rows else sd[key][0])
    full = {key: shape[0] for key, shape in sd.items()}
    if rows != full:
        raise RuntimeError(f"Keras layout does not cover mer's state_dict: {rows} vs {full}")
