"""Model blocks: TF-"same" pooling, EC-CBAM and variants, CBAM, MSMH, MHA pool, Keras init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mer.models import init as kinit
from mer.models.blocks import (
    CBAM,
    ECCBAM,
    MSMH,
    MHAPool,
    Recurrent,
    tf_same_max_pool3d,
    tf_same_max_pool3d_reference,
    tf_same_out,
    tf_same_pads,
)

# ------------------------------------------------------------------------------ TF-same pooling


@pytest.mark.parametrize(
    ("size", "out", "pads"),
    [(30, 10, (0, 0)), (128, 43, (0, 1)), (10, 4, (1, 1)), (43, 15, (1, 1)), (4, 2, (1, 1))],
)
def test_tf_same_pads_match_model_md(size, out, pads):
    assert tf_same_out(size, 3) == out
    assert tf_same_pads(size, 3, 3) == pads


def _pool_1d(values: torch.Tensor, axis: int, fn) -> torch.Tensor:
    """Pool a 1-D sequence laid along one of (T, H, W); the other two axes have size 3."""
    shape = [1, 1, 3, 3, 3]
    shape[2 + axis] = len(values)
    view = [1, 1, 1, 1, 1]
    view[2 + axis] = len(values)
    x = values.view(view).expand(shape).contiguous()
    out = fn(x, 3, 3)
    return out.flatten()  # the other axes pool 3 → 1


# Worked by hand from TF's rule: 43 → 15 pads 1 before / 1 after, so window i covers
# 3i−1 … 3i+1 (clipped); 128 → 43 pads 0 / 1, so window i covers 3i … 3i+2 (clipped).
MAX_43 = [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 42]
MAX_128 = [2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 44, 47, 50, 53, 56, 59, 62, 65,
           68, 71, 74, 77, 80, 83, 86, 89, 92, 95, 98, 101, 104, 107, 110, 113, 116, 119, 122,
           125, 127]  # fmt: skip


@pytest.mark.parametrize("fn", [tf_same_max_pool3d, tf_same_max_pool3d_reference])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_tf_same_pool_windows_by_hand(fn, axis):
    assert _pool_1d(torch.arange(43.0), axis, fn).tolist() == MAX_43
    assert _pool_1d(torch.arange(128.0), axis, fn).tolist() == MAX_128
    # Descending 42 … 0: the first window is (pad, cell 0, cell 1), so its max is cell 0 = 42.
    assert _pool_1d(torch.arange(43.0).flip(0), axis, fn)[0].item() == 42.0


@pytest.mark.parametrize("fn", [tf_same_max_pool3d, tf_same_max_pool3d_reference])
def test_padded_cells_never_win(fn):
    values = -(torch.arange(43.0) + 1)  # all negative: a zero pad would win, −inf never does
    out = _pool_1d(values, 1, fn)
    assert out.tolist() == [-(max(3 * i - 1, 0) + 1.0) for i in range(15)]
    assert torch.isfinite(out).all()


def test_fast_pool_equals_literal_definition_for_all_sizes():
    gen = torch.Generator().manual_seed(0)
    for kernel in (2, 3, 4, 5):
        for stride in sorted({1, 2, kernel}):
            for n in range(1, 36):
                x = torch.randn(2, 2, n, 5, n + 2, generator=gen)
                fast = tf_same_max_pool3d(x, kernel, stride)
                ref = tf_same_max_pool3d_reference(x, kernel, stride)
                assert torch.equal(fast, ref), (kernel, stride, n)
                assert fast.shape[-3:] == tuple(tf_same_out(m, stride) for m in x.shape[-3:])


def test_pool_bf16_and_channels_last():
    x = torch.randn(2, 4, 10, 43, 43)
    ref = tf_same_max_pool3d_reference(x, 3, 3)
    out = tf_same_max_pool3d(x.to(memory_format=torch.channels_last_3d), 3, 3)
    assert torch.equal(out, ref)
    out16 = tf_same_max_pool3d_reference(x.bfloat16(), 3, 3)
    assert out16.dtype == torch.bfloat16 and torch.equal(out16, ref.bfloat16())


# ------------------------------------------------------------------------------ EC-CBAM & CBAM


def _ec_reference(block: ECCBAM, x: torch.Tensor, gate: str, sequential: bool) -> torch.Tensor:
    ca_avg = block.channel.fc_avg(x.mean(dim=(2, 3, 4)))
    ca_max = block.channel.fc_max(x.amax(dim=(2, 3, 4)))
    logits = 0.5 * (ca_max - ca_avg) if gate == "diff" else ca_max + ca_avg
    ca = torch.sigmoid(logits).view(*logits.shape, 1, 1, 1)

    def spatial(z):
        pooled = torch.cat([z.max(dim=1, keepdim=True).values, z.mean(dim=1, keepdim=True)], 1)
        return torch.sigmoid(
            F.conv3d(pooled, block.spatial.conv.weight, block.spatial.conv.bias, padding=1)
        )

    if sequential:
        y = x * ca
        return y * spatial(y)
    return x * ca * spatial(x)


@pytest.mark.parametrize(
    ("variant", "gate", "sequential"),
    [
        ("ec_cbam", "diff", False),
        ("ec_cbam_sum", "sum", False),
        ("ec_cbam_sequential", "diff", True),
    ],
)
def test_ec_cbam_variants_match_their_formulas(variant, gate, sequential):
    torch.manual_seed(0)
    block = ECCBAM(16, 8, 0.2, variant=variant)
    x = torch.randn(2, 16, 4, 5, 5)
    assert torch.allclose(block(x), _ec_reference(block, x, gate, sequential), atol=1e-6)


def test_ec_cbam_structure_and_parameter_count():
    block = ECCBAM(64, 8, 0.2)
    assert block.channel.fc_avg is not block.channel.fc_max  # two MLPs, not shared
    conv = block.spatial.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (2, 64, (3, 3, 3))
    assert sum(p.numel() for p in block.channel.parameters()) == 2192
    assert sum(p.numel() for p in block.spatial.parameters()) == 3520
    for v in ("ec_cbam_sum", "ec_cbam_sequential"):
        assert sum(p.numel() for p in ECCBAM(64, 8, 0.2, v).parameters()) == 5712


def test_ec_cbam_variants_differ():
    torch.manual_seed(0)
    blocks = {v: ECCBAM(8, 2, 0.2, v) for v in ("ec_cbam", "ec_cbam_sum", "ec_cbam_sequential")}
    for b in blocks.values():
        b.load_state_dict(blocks["ec_cbam"].state_dict())
    x = torch.randn(1, 8, 3, 4, 4)
    outs = {v: b(x) for v, b in blocks.items()}
    assert not torch.allclose(outs["ec_cbam"], outs["ec_cbam_sum"])
    assert not torch.allclose(outs["ec_cbam"], outs["ec_cbam_sequential"])


def test_cbam_is_standard_cbam():
    torch.manual_seed(0)
    block = CBAM(64, 8)
    assert isinstance(block.mlp[1], nn.ReLU)  # one shared MLP with ReLU
    conv = block.spatial.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (2, 1, (7, 7, 7))
    assert conv.padding == (3, 3, 3)
    # 64·8+8 + 8·64+64 = 1,096 (shared MLP) + 2·343+1 = 687 (spatial conv)
    assert sum(p.numel() for p in block.parameters()) == 1096 + 687
    x = torch.randn(2, 64, 4, 6, 6)
    gate = torch.sigmoid(block.mlp(x.mean(dim=(2, 3, 4))) + block.mlp(x.amax(dim=(2, 3, 4))))
    y = x * gate[:, :, None, None, None]
    pooled = torch.cat([y.amax(1, keepdim=True), y.mean(1, keepdim=True)], 1)
    expected = y * torch.sigmoid(F.conv3d(pooled, conv.weight, conv.bias, padding=3))
    assert torch.allclose(block(x), expected, atol=1e-6)


# ------------------------------------------------------------------------------ MSMH


def _msmh_reference(m: MSMH, h: torch.Tensor) -> torch.Tensor:
    """MODEL.md §3 literally, one scale at a time, from the fused module's weight slices."""
    w, b = m.qkv.weight, m.qkv.bias
    outs, offset = [], 0
    for i, d in enumerate(m.dims):
        q, k, v = (
            h @ w[p * m.total + offset : p * m.total + offset + d].T
            + b[p * m.total + offset : p * m.total + offset + d]
            for p in range(3)
        )
        scores = q @ k.transpose(1, 2) / math.sqrt(d)  # (B, Tq, Tk)
        weights = scores.max(dim=1, keepdim=True).values.softmax(dim=-1)  # (B, 1, Tk)
        outs.append(m.out[i]((weights @ v).squeeze(1)))
        offset += d
    return torch.cat(outs, dim=-1)


def test_msmh_parameter_count_and_output():
    m = MSMH(512, [2, 4, 8, 16, 32, 64, 128, 256])
    assert m.dims == [256, 128, 64, 32, 16, 8, 4, 2] and m.out_features == 510
    assert sum(p.numel() for p in m.parameters()) == 872_780
    assert [k for k, _ in m.state_dict().items() if "indicator" in k or "score" in k] == []


@pytest.mark.parametrize("t", [1, 2, 4, 7])
def test_fused_msmh_equals_per_scale_reference(t):
    torch.manual_seed(t)
    m = MSMH(64, [2, 4, 8, 32])
    kinit.keras_init_(m)
    nn.init.normal_(m.qkv.bias)  # non-zero biases so their slicing is checked too
    h = torch.randn(3, t, 64)
    assert torch.allclose(m(h), _msmh_reference(m, h), atol=1e-5)


def test_msmh_keras_init_is_per_scale():
    torch.manual_seed(0)
    m = MSMH(512, [2, 4, 8, 16, 32, 64, 128, 256])
    kinit.keras_init_(m)
    offset = 0
    for d in m.dims:
        limit = math.sqrt(6 / (512 + d))
        for p in range(3):
            block = m.qkv.weight[p * m.total + offset : p * m.total + offset + d]
            assert block.abs().max() <= limit
            assert block.abs().max() > 0.9 * limit
        offset += d
    assert (m.qkv.bias == 0).all()
    for layer, d in zip(m.out, m.dims):
        assert layer.weight.abs().max() <= math.sqrt(6 / (2 * d)) and (layer.bias == 0).all()


# ------------------------------------------------------------------------------ MHA pool


@pytest.mark.parametrize("causal", [False, True])
def test_mha_pool_equals_torch_multihead_attention(causal):
    torch.manual_seed(0)
    pool = MHAPool(32, 4, 8, causal=causal)
    ref = nn.MultiheadAttention(32, 4, batch_first=True)
    assert sum(p.numel() for p in pool.parameters()) == sum(p.numel() for p in ref.parameters())
    ref.in_proj_weight.data.copy_(pool.qkv.weight)
    ref.in_proj_bias.data.copy_(pool.qkv.bias)
    ref.out_proj.weight.data.copy_(pool.proj.weight)
    ref.out_proj.bias.data.copy_(pool.proj.bias)
    h = torch.randn(2, 5, 32)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None
    expected = ref(h, h, h, attn_mask=mask, need_weights=False)[0].amax(dim=1)
    assert torch.allclose(pool(h), expected, atol=1e-5)


def test_mha_pool_keras_parameter_count():
    # Keras MultiHeadAttention(num_heads, key_dim) on d = 512: 4·512·h·k + 3·h·k + 512.
    for heads, key_dim in [(8, 512), (4, 512), (8, 64)]:
        pool = MHAPool(512, heads, key_dim)
        hk = heads * key_dim
        assert sum(p.numel() for p in pool.parameters()) == 4 * 512 * hk + 3 * hk + 512
    assert sum(p.numel() for p in MHAPool(512, 8, 512).parameters()) == 8_401_408


def test_mha_pool_keras_init_uses_keras_fans():
    torch.manual_seed(0)
    pool = MHAPool(512, 4, 512)
    kinit.keras_init_(pool)
    # kernel (512, 4, 512): fan_in = 4·512, fan_out = 512·512; output (4, 512, 512): 2048, 2048
    assert pool.qkv.weight.abs().max() <= math.sqrt(6 / (4 * 512 + 512 * 512))
    assert pool.proj.weight.abs().max() <= math.sqrt(6 / (2048 + 2048))
    assert (pool.qkv.bias == 0).all() and (pool.proj.bias == 0).all()


# ------------------------------------------------------------------------------ init


def test_he_normal_statistics():
    torch.manual_seed(0)
    w = torch.empty(256, 4000)
    kinit.he_normal_(w, fan_in=4000)
    sigma = math.sqrt(2 / 4000) / kinit.TRUNCATION_STD
    assert w.abs().max() <= 2 * sigma
    assert w.std().item() == pytest.approx(math.sqrt(2 / 4000), rel=0.01)


def test_conv_fans_follow_keras():
    assert kinit.fans(torch.empty(32, 3, 5, 5, 5)) == (3 * 125, 32 * 125)
    assert kinit.fans(torch.empty(128, 14400)) == (14400, 128)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_keras_init(kind):
    torch.manual_seed(0)
    r = Recurrent(kind, 64, 32)
    kinit.keras_init_(r)
    gates = 3 if kind == "gru" else 4
    w_hh = r.rnn.weight_hh_l0  # (gates·H, H): orthogonal over the whole stacked matrix
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(32), atol=1e-5)
    limit = math.sqrt(6 / (64 + gates * 32))
    assert r.rnn.weight_ih_l0.abs().max() <= limit
    expected_bias = torch.zeros(gates * 32)
    if kind == "lstm":
        expected_bias[32:64] = 1.0  # Keras unit_forget_bias
    assert torch.equal(r.rnn.bias_ih_l0, expected_bias)
    assert (r.rnn.bias_hh_l0 == 0).all()


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_loop_impl_equals_torch_rnn(kind):
    torch.manual_seed(0)
    r = Recurrent(kind, 12, 16)
    nn.init.normal_(r.rnn.bias_ih_l0)
    nn.init.normal_(r.rnn.bias_hh_l0)
    x = torch.randn(3, 5, 12, requires_grad=True)
    ref = r(x)
    r.impl = "loop"
    out = r(x)
    assert torch.allclose(out, ref, atol=1e-5)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    (g_out,) = torch.autograd.grad(out.sum(), x)
    assert torch.allclose(g_out, g_ref, atol=1e-5)
