"""The original max-pools MSMH's scores over queries with MaxPooling1D(pool_size=10,
padding="same"): mer computes exactly that for T' ≤ 10 steps and refuses longer sequences."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from mer.config import replace
from mer.errors import ConfigError
from mer.models import PRESETS, build_model
from mer.models.blocks import MSMH


def tf_same_max_pool1d(x: np.ndarray, pool: int) -> np.ndarray:
    """Keras MaxPooling1D(pool_size=pool, padding="same") (strides = pool) over axis 1 of
    (B, steps, features), from TF's definition: out = ceil(n / s) windows, total padding
    (out − 1)·s + k − n split as before = total // 2, the rest after; padding never wins."""
    n = x.shape[1]
    out = math.ceil(n / pool)
    total = max((out - 1) * pool + pool - n, 0)
    before = total // 2
    windows = []
    for i in range(out):
        lo, hi = i * pool - before, i * pool - before + pool
        windows.append(x[:, max(lo, 0) : min(hi, n)].max(axis=1))
    return np.stack(windows, axis=1)


def original_msmh(h: np.ndarray, msmh: MSMH) -> np.ndarray:
    """The seed's MultiScaleMultiHeadAttention(v=k=q=h), head by head (SingleHeadAttention.call),
    in float64 numpy with mer's parameters: (B, windows, Σ d_s)."""
    w = msmh.qkv.weight.detach().double().numpy()
    b = msmh.qkv.bias.detach().double().numpy()
    outs, start = [], 0
    for i, d in enumerate(msmh.dims):
        q, k, v = (
            h @ w[part * msmh.total + start : part * msmh.total + start + d].T
            + b[part * msmh.total + start : part * msmh.total + start + d]
            for part in range(3)
        )
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)  # (B, Tq, Tk)
        scores = tf_same_max_pool1d(scores, 10)  # (B, windows, Tk)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        out = msmh.out[i]
        outs.append(
            (weights @ v) @ out.weight.detach().double().numpy().T
            + out.bias.detach().double().numpy()
        )
        start += d
    return np.concatenate(outs, axis=-1)


def test_reference_pooling_follows_tf_same_windows():
    x = np.arange(25, dtype=float)[None, :, None]
    # 25 steps: 3 windows, padding 5 = 2 before + 3 after → [-2, 8), [8, 18), [18, 28)
    assert tf_same_max_pool1d(x, 10)[0, :, 0].tolist() == [7, 17, 24]
    # 11 steps: 2 windows, padding 9 = 4 before + 5 after → [-4, 6), [6, 16)
    assert tf_same_max_pool1d(x[:, :11], 10)[0, :, 0].tolist() == [5, 10]
    # ≤ 10 steps: one window, the max over all
    for n in (1, 4, 10):
        assert tf_same_max_pool1d(x[:, :n], 10)[0, :, 0].tolist() == [n - 1]


@pytest.mark.parametrize("steps", [1, 2, 4, 7, 10])
def test_msmh_equals_the_original_up_to_ten_steps(steps):
    torch.manual_seed(0)
    msmh = MSMH(32, [2, 4, 8]).double()
    with torch.no_grad():
        for p in msmh.parameters():
            p.copy_(torch.randn_like(p))
    h = torch.randn(3, steps, 32, dtype=torch.float64)
    reference = original_msmh(h.numpy(), msmh)
    assert reference.shape == (3, 1, 16 + 8 + 4)
    with torch.no_grad():
        mine = msmh(h).numpy()
    # (mer's per-scale 1/√d_s is a float32 buffer: 1e-7-relative, not float64-exact)
    np.testing.assert_allclose(mine, reference[:, 0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("steps", "windows"), [(11, 2), (20, 2), (21, 3)])
def test_original_gives_one_output_per_window_beyond_ten_steps(steps, windows):
    """Why mer refuses T' > 10: the original's pooled output has a time axis then."""
    torch.manual_seed(0)
    msmh = MSMH(16, [2]).double()
    h = torch.randn(2, steps, 16, dtype=torch.float64).numpy()
    assert original_msmh(h, msmh).shape == (2, windows, 8)


@pytest.mark.parametrize(
    ("pool", "most"),
    [(3, 90), (2, 40), (1, 10)],
)
def test_build_refuses_more_than_ten_steps_after_pooling(pool, most):
    cfg = replace(PRESETS["casme2"], pool=pool)
    with torch.device("meta"):
        assert build_model(cfg, input_shape=(most, 32, 32)).feature_shape[0] == 10
        t1 = math.ceil((most + 1) / pool)
        message = (
            f"data.frames.count: {most + 1} frames give T' = 11 steps after the two "
            f"model.pool = {pool} poolings ({most + 1} → {t1} → 11), but model.pooling: msmh "
            "follows the original, which max-pools the attention over windows of 10 steps "
            "(MaxPooling1D(pool_size=10, padding='same')) and so would give ceil(11 / 10) = 2 "
            f"predictions per clip; use data.frames.count ≤ {most} at model.pool = {pool}, a "
            "larger model.pool, or model.pooling: last or mean"
        )
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_model(cfg, input_shape=(most + 1, 32, 32))
        for pooling in ("mha", "msmh_mha"):
            with pytest.raises(ConfigError, match=f"model.pooling: {pooling} follows"):
                build_model(replace(cfg, pooling=pooling), input_shape=(most + 1, 32, 32))
        for pooling in ("last", "mean"):  # no window: any length
            model = build_model(replace(cfg, pooling=pooling), input_shape=(most + 1, 32, 32))
            assert model.feature_shape[0] == 11


def test_experiment_config_names_the_frame_count():
    from mer.config import from_dict

    cfg = from_dict({"data": {"frames": {"count": 100}}})
    with torch.device("meta"), pytest.raises(ConfigError, match="data.frames.count: 100 frames"):
        build_model(cfg)


def test_forward_refuses_a_longer_clip_than_the_window_allows():
    model = build_model(PRESETS["casme2"], input_shape=(10, 32, 32)).eval()
    x = torch.zeros(1, 3, 91, 32, 32)
    with pytest.raises(
        ValueError, match=r"model input x_a \(1, 3, 91, 32, 32\): data.frames.count"
    ):
        model(x, x)
    with torch.no_grad():  # 90 frames: 10 steps, fine
        assert model(x[:, :, :90], x[:, :, :90]).shape == (1, 3)
