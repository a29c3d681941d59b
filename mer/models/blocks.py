"""Building blocks of the dual-branch 3D-CNN (MODEL.md §1–3), written for PyTorch's (B, C, T, H, W).

Every Linear/Conv3d carries a `keras_init` tag ("he_normal" or "glorot_uniform", Keras's default)
that `mer.models.init` reads; blocks whose Keras layers have a different shape than ours (fused
projections) initialise themselves in `keras_init_()`. Modules tagged `l2 = True` are the kernels
the original regularised with L2 (see `mer.models.network.l2_parameters`).

Speed notes: nothing here loops over the batch, syncs with the host or calls `.item()`; the
attention pools are fused (one projection for all MSMH scales), and every op is autocast-safe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mer.models import init as kinit

# ------------------------------------------------------------------------------ TF-"same" pooling


def tf_same_out(size: int, stride: int) -> int:
    """Output length of a TF/Keras "same" pooling or convolution: ceil(size / stride)."""
    return -(-size // stride)


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding of one axis: (before, after), before = total // 2, the rest after."""
    total = max((tf_same_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_max_pool3d(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max pooling over (T, H, W) with Keras `MaxPooling3D(padding="same")` window alignment.

    Padded cells never win. For kernel == stride (the model's case) PyTorch's implicit −inf
    padding with `ceil_mode=True` gives TF's windows without copying the tensor (tests check it
    against the literal definition below); otherwise the input is padded with −inf explicitly.
    """
    if kernel == stride and min(x.shape[-3:]) >= kernel:
        # total pad = out·s − size < s, so after − before ∈ {0, 1} and before ≤ (k − 1) / 2:
        # symmetric `before` plus ceil_mode's extra right-hand cells is TF's split exactly.
        before = [tf_same_pads(n, kernel, stride)[0] for n in x.shape[-3:]]
        return F.max_pool3d(x, kernel, stride, padding=before, ceil_mode=True)
    return tf_same_max_pool3d_reference(x, kernel, stride)


def tf_same_max_pool3d_reference(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The literal definition: pad each axis with −inf the TF way, then pool without padding."""
    pads: list[int] = []
    for n in reversed(x.shape[-3:]):  # F.pad lists the last axis first
        pads.extend(tf_same_pads(n, kernel, stride))
    return F.max_pool3d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class TFSameMaxPool3d(nn.Module):
    """`MaxPooling3D(pool_size=k, strides=s, padding="same")` as a module."""

    def __init__(self, kernel: int, stride: int | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride or kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tf_same_max_pool3d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=tf_same"


# ------------------------------------------------------------------------------ small helpers


def linear(
    in_f: int, out_f: int, keras_init: str = "glorot_uniform", l2: bool = False
) -> nn.Linear:
    layer = nn.Linear(in_f, out_f)
    layer.keras_init = keras_init
    layer.l2 = l2
    return layer


def conv3d(in_c: int, out_c: int, kernel: int, keras_init: str = "glorot_uniform") -> nn.Conv3d:
    """Stride-1 Conv3d with Keras "same" padding (symmetric k//2 for odd k, TF split for even)."""
    padding: int | str = kernel // 2 if kernel % 2 else "same"
    layer = nn.Conv3d(in_c, out_c, kernel, padding=padding)
    layer.keras_init = keras_init
    return layer


class ConvBlock(nn.Module):
    """Conv3d(same) → LeakyReLU → MaxPool3d(TF-same): steps A1–A2, B1–B2 and M2 of MODEL.md §1."""

    def __init__(self, in_c: int, out_c: int, kernel: int, pool: int, slope: float) -> None:
        super().__init__()
        self.conv = conv3d(in_c, out_c, kernel, keras_init="he_normal")
        self.act = nn.LeakyReLU(slope)
        self.pool = TFSameMaxPool3d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.conv(x)))


# ------------------------------------------------------------------------------ attention (§2)


class ECChannelAttention(nn.Module):
    """Enhanced channel attention: two separate MLPs on the avg- and max-pooled descriptors.

    mode "diff" (paper): sigmoid(0.5·(fc_max(m) − fc_avg(a))); mode "sum" (original SMIC script):
    sigmoid(fc_max(m) + fc_avg(a)). Returns a (B, C, 1, 1, 1) gate.
    """

    def __init__(self, channels: int, reduction: int, slope: float, mode: str = "diff") -> None:
        super().__init__()
        hidden = channels // reduction
        self.mode = mode
        self.fc_avg = self._mlp(channels, hidden, slope)
        self.fc_max = self._mlp(channels, hidden, slope)

    @staticmethod
    def _mlp(channels: int, hidden: int, slope: float) -> nn.Sequential:
        return nn.Sequential(
            linear(channels, hidden, "glorot_uniform", l2=True),
            nn.LeakyReLU(slope),
            linear(hidden, channels, "he_normal"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc_avg(x.mean(dim=(2, 3, 4)))
        mx = self.fc_max(x.amax(dim=(2, 3, 4)))
        logits = 0.5 * (mx - avg) if self.mode == "diff" else mx + avg
        return torch.sigmoid(logits)[:, :, None, None, None]


def channel_pool(x: torch.Tensor) -> torch.Tensor:
    """concat[max over C, mean over C] → (B, 2, T, H, W), the order of the original."""
    return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class SpatialAttention(nn.Module):
    """sigmoid(Conv3d(2 → out_channels, k, same)(channel_pool(x))).

    EC-CBAM uses out_channels = C and k = 3 (a per-channel map); standard CBAM uses 1 and 7.
    """

    def __init__(self, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = conv3d(2, out_channels, kernel, keras_init="glorot_uniform")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(channel_pool(x)))


class ECCBAM(nn.Module):
    """EC-CBAM. variant: "ec_cbam" (paper: parallel, diff gate), "ec_cbam_sum" (SMIC script:
    parallel, sum gate), "ec_cbam_sequential" (diff gate; spatial map computed on x·ca, as the
    paper's figure draws it)."""

    def __init__(self, channels: int, reduction: int, slope: float, variant: str = "ec_cbam"):
        super().__init__()
        self.variant = variant
        mode = "sum" if variant == "ec_cbam_sum" else "diff"
        self.channel = ECChannelAttention(channels, reduction, slope, mode)
        self.spatial = SpatialAttention(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "ec_cbam_sequential":
            x = x * self.channel(x)
            return x * self.spatial(x)
        return x * self.channel(x) * self.spatial(x)

    def extra_repr(self) -> str:
        return f"variant={self.variant}"


class CBAM(nn.Module):
    """Standard CBAM (Woo et al. 2018) in 3D, for the ablation rows: one shared MLP with ReLU,
    gate sigmoid(MLP(avg) + MLP(max)); then a one-channel 7×7×7 spatial map on the refined x."""

    def __init__(self, channels: int, reduction: int, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            linear(channels, hidden, "glorot_uniform", l2=True),
            nn.ReLU(),
            linear(hidden, channels, "glorot_uniform"),
        )
        self.spatial = SpatialAttention(1, spatial_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.mlp(x.mean(dim=(2, 3, 4))) + self.mlp(x.amax(dim=(2, 3, 4))))
        x = x * gate[:, :, None, None, None]
        return x * self.spatial(x)


# ------------------------------------------------------------------------------ sequence pools (§3)


class MSMH(nn.Module):
    """Multi-scale multi-head attention pooling: (B, T, d) → (B, Σ d//s).

    Per scale s (head width d_s = d // s): q, k, v = Linear(d → d_s)(h); scores = q kᵀ / √d_s;
    max over the query axis; softmax over keys; weights @ v; Linear(d_s → d_s). The original
    max-pools the scores with `MaxPooling1D(pool_size=10, padding="same")` over queries: for
    T ≤ 10 one window, the max over all queries (every preset: T' = 2, 4 or 8), which is what
    this computes; longer sequences would give one output per window of 10 queries, so the
    network refuses them at build (`mer.models.network.ATTENTION_WINDOW`).

    Fused for speed, same parameters and math as eight separate heads: one Linear(d → 3·Σd_s)
    gives q | k | v of all scales (scale blocks in `scales` order inside each), per-scale scores
    come from one product with a block indicator, and the eight output Linears (kept as separate
    modules, so their parameters stay per scale) are applied as one block-diagonal matrix.
    """

    def __init__(self, d_model: int, scales: list[int]) -> None:
        super().__init__()
        self.d_model = d_model
        self.dims = [d_model // s for s in scales]
        total = sum(self.dims)
        self.total = total
        self.qkv = nn.Linear(d_model, 3 * total)
        self.out = nn.ModuleList(linear(d, d, "glorot_uniform") for d in self.dims)
        # (Σd_s, S) block indicator: feature j belongs to scale i; score_sum adds 1/√d_i.
        owner = [i for i, d in enumerate(self.dims) for _ in range(d)]
        rows = [[float(i == j) for j in range(len(self.dims))] for i in owner]
        scaled = [[v / math.sqrt(self.dims[j]) for j, v in enumerate(r)] for r in rows]
        self.register_buffer("indicator", torch.tensor(rows), persistent=False)
        self.register_buffer("score_sum", torch.tensor(scaled), persistent=False)

    def keras_init_(self) -> None:
        """Each of q, k, v of each scale is a Keras Dense(d → d_s): its own glorot limit."""
        w = self.qkv.weight.data
        for part in range(3):
            start = part * self.total
            for d in self.dims:
                kinit.glorot_uniform_(w[start : start + d], fan_in=self.d_model, fan_out=d)
                start += d
        nn.init.zeros_(self.qkv.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(h).split(self.total, dim=-1)  # (B, T, Σd_s) each
        scores = (q.unsqueeze(2) * k.unsqueeze(1)) @ self.score_sum  # (B, Tq, Tk, S)
        weights = scores.amax(dim=1).softmax(dim=1)  # (B, Tk, S): max over queries, softmax keys
        pooled = ((weights @ self.indicator.t()) * v).sum(dim=1)  # (B, Σd_s)
        weight = torch.block_diag(*(layer.weight for layer in self.out))
        bias = torch.cat([layer.bias for layer in self.out])
        return F.linear(pooled, weight, bias)

    @property
    def out_features(self) -> int:
        return self.total

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, head_dims={self.dims}"


class MHAPool(nn.Module):
    """Keras `MultiHeadAttention(num_heads, key_dim)` self-attention, then max over time.

    Projections d → heads·key_dim for q, k, v (fused in one Linear) and heads·key_dim → d; with
    key_dim = d // heads this is `nn.MultiheadAttention(d, heads)` (same parameters and math).
    The max over time is the original's `MaxPooling1D(pool_size=10, padding="same")` after the
    attention (deception script), exact for T ≤ 10; the network refuses longer sequences
    (`mer.models.network.ATTENTION_WINDOW`).
    """

    def __init__(self, d_model: int, heads: int, key_dim: int, causal: bool = False) -> None:
        super().__init__()
        self.d_model, self.heads, self.key_dim, self.causal = d_model, heads, key_dim, causal
        inner = heads * key_dim
        self.qkv = nn.Linear(d_model, 3 * inner)
        self.proj = nn.Linear(inner, d_model)

    def keras_init_(self) -> None:
        """Keras initialises the EinsumDense kernels (d, heads, key_dim) and (heads, key_dim, d)
        with glorot_uniform and its fan rule for >2-D shapes (leading axes are a "receptive
        field"): q/k/v fan_in = heads·d, fan_out = key_dim·d; output fan_in = key_dim·heads,
        fan_out = d·heads."""
        d, h, kd = self.d_model, self.heads, self.key_dim
        kinit.glorot_uniform_(self.qkv.weight.data, fan_in=h * d, fan_out=kd * d)
        kinit.glorot_uniform_(self.proj.weight.data, fan_in=kd * h, fan_out=d * h)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, self.key_dim).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, h, T, kd)
        att = att.transpose(1, 2).reshape(b, t, self.heads * self.key_dim)
        return self.proj(att).amax(dim=1)

    @property
    def out_features(self) -> int:
        return self.d_model

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, heads={self.heads}, key_dim={self.key_dim}, " + (
            f"causal={self.causal}"
        )


class ConcatPool(nn.Module):
    """Several pools side by side, outputs concatenated (deception script: MSMH ‖ MHA)."""

    def __init__(self, *pools: nn.Module) -> None:
        super().__init__()
        self.pools = nn.ModuleList(pools)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(h) for pool in self.pools], dim=-1)

    @property
    def out_features(self) -> int:
        return sum(p.out_features for p in self.pools)


class MeanPool(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out_features = d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1)


class LastPool(nn.Module):
    """The last time step (what a Keras GRU with return_sequences=False hands on)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out_features = d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, -1]


# ------------------------------------------------------------------------------ recurrent layer


class Recurrent(nn.Module):
    """GRU or LSTM over the step axis, full sequence out (Keras return_sequences=True).

    PyTorch's GRU has Keras's reset_after=True form (two biases): identical parameter count.
    PyTorch's LSTM has two biases where Keras has one: 4·units more parameters, same function.

    impl "torch" runs nn.GRU/nn.LSTM (cuDNN on GPU). impl "loop" runs the same parameters as
    explicit matmuls, one Python step per time step (T' is 2–8 here): slower per call, but
    `torch.func.vmap` (stacked models) and `torch.compile` without graph breaks can trace it,
    which they cannot do with nn.GRU. Switch with `mer.models.network.set_recurrent_impl`.
    """

    def __init__(self, kind: str, in_features: int, units: int, impl: str = "torch") -> None:
        super().__init__()
        rnn = nn.GRU if kind == "gru" else nn.LSTM
        self.kind = kind
        self.impl = impl
        self.rnn = rnn(in_features, units, batch_first=True)
        self.out_features = units

    def keras_init_(self) -> None:
        """Kernel glorot over Keras's (in, gates·units) matrix (= torch's stacked (gates·units,
        in) weight: same fans); recurrent kernel orthogonal over the whole (units, gates·units)
        matrix (torch's stacked weight_hh is its transpose up to the order of gate blocks, which
        leaves the orthogonal distribution unchanged); zero biases, LSTM forget-gate bias 1
        (Keras unit_forget_bias)."""
        units = self.out_features
        w_ih, w_hh = self.rnn.weight_ih_l0, self.rnn.weight_hh_l0
        kinit.glorot_uniform_(w_ih.data, fan_in=w_ih.shape[1], fan_out=w_ih.shape[0])
        nn.init.orthogonal_(w_hh.data)
        nn.init.zeros_(self.rnn.bias_ih_l0)
        nn.init.zeros_(self.rnn.bias_hh_l0)
        if self.kind == "lstm":  # gate order i, f, g, o in both frameworks
            self.rnn.bias_ih_l0.data[units : 2 * units] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "loop":
            return self._loop(x)
        return self.rnn(x)[0]

    def _loop(self, x: torch.Tensor) -> torch.Tensor:
        """PyTorch's GRU/LSTM equations, gate order r, z, n / i, f, g, o; zero initial state."""
        rnn = self.rnn
        gi = F.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)  # all steps' input gates at once
        h = gi.new_zeros(x.shape[0], self.out_features)
        c = h
        outs = []
        for t in range(x.shape[1]):
            gh = F.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0)
            if self.kind == "gru":
                i_r, i_z, i_n = gi[:, t].chunk(3, dim=-1)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = n + z * (h - n)
            else:
                i, f, g, o = (gi[:, t] + gh).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1)

    def extra_repr(self) -> str:
        return f"impl={self.impl}"


# ------------------------------------------------------------------------------ dense stacks


class MLP(nn.Module):
    """Per hidden width: [Dropout(p_before)] → Linear → LeakyReLU → [Dropout(p_after)]; then an
    optional final Linear (preceded by `final_dropout`).

    Used for the per-step stack F and the head H. Acts on the last axis, so (B, T, F) inputs are
    handled per step like Keras's TimeDistributed(Dense). Hidden Linears are he_normal, the final
    one glorot_uniform (the original's choices); `l2` tags the hidden kernels as L2-regularised.
    """

    def __init__(
        self,
        in_features: int,
        widths: list[int],
        slope: float,
        *,
        dropout_before: list[float],
        dropout_after: list[float],
        l2: bool = False,
        out_features: int | None = None,
        final_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        f = in_features
        for width, p_before, p_after in zip(widths, dropout_before, dropout_after, strict=True):
            if p_before > 0:
                layers.append(nn.Dropout(p_before))
            layers += [linear(f, width, "he_normal", l2=l2), nn.LeakyReLU(slope)]
            if p_after > 0:
                layers.append(nn.Dropout(p_after))
            f = width
        if out_features is not None:
            if final_dropout > 0:
                layers.append(nn.Dropout(final_dropout))
            layers.append(linear(f, out_features, "glorot_uniform"))
            f = out_features
        self.layers = nn.Sequential(*layers)
        self.out_features = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
