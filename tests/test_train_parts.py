"""Units of training: weighted CE, class weights, L2 kernels, augmentation, device data, runtime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mer.config import AugmentConfig, TrainConfig, from_dict
from mer.errors import ConfigError
from mer.training.augment import augment_enabled, augment_pair
from mer.training.fold_data import FoldTensors
from mer.training.loss import l2_parameters, l2_penalty, resolve_class_weights, weighted_ce
from mer.training.optim import build_optimizer, build_scheduler
from mer.training.runtime import resolve_runtime
from tests.test_train_support import TinyNet, tiny_data


# ------------------------------------------------------------------------------------ loss
def test_weighted_ce_is_mean_of_weighted_nll_not_normalised():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 1, 2])
    w = torch.tensor([0.3, 0.35, 0.35])
    # by hand: mean_i w[y_i] * (logsumexp(z_i) - z_i[y_i])
    z = logits.double().numpy()
    nll = [math.log(np.exp(z[i]).sum()) - z[i, y[i]] for i in range(4)]
    expected = sum(float(w[y[i]]) * nll[i] for i in range(4)) / 4
    assert weighted_ce(logits, y, w).item() == pytest.approx(expected, rel=1e-6)
    # nn.CrossEntropyLoss(weight=...) divides by Σ w[y_i] instead (not what the original did)
    normalised = F.cross_entropy(logits, y, weight=w).item()
    assert normalised == pytest.approx(expected * 4 / float(w[y].sum()), rel=1e-6)
    assert weighted_ce(logits, y, None).item() == pytest.approx(F.cross_entropy(logits, y).item())


def test_weighted_ce_runs_in_float32_under_bf16_logits():
    logits = torch.randn(5, 3).to(torch.bfloat16)
    out = weighted_ce(logits, torch.tensor([0, 1, 2, 0, 1]), torch.ones(3))
    assert out.dtype == torch.float32


def test_class_weights_resolution():
    labels = np.array([0, 0, 0, 1, 2, 2])
    bal = resolve_class_weights(TrainConfig(class_weights="balanced"), labels, 3)
    np.testing.assert_allclose(bal, [6 / 9, 6 / 3, 6 / 6])
    missing = resolve_class_weights(TrainConfig(class_weights="balanced"), np.array([0, 0, 2]), 3)
    np.testing.assert_allclose(missing, [3 / 6, 0.0, 3 / 3])
    listed = resolve_class_weights(TrainConfig(), labels, 3)
    np.testing.assert_allclose(listed, [0.3, 0.35, 0.35])
    assert resolve_class_weights(TrainConfig(class_weights=None), labels, 3) is None
    assert resolve_class_weights(TrainConfig(loss="ce"), labels, 3) is None
    with pytest.raises(ConfigError, match="expected 2 weights"):
        resolve_class_weights(TrainConfig(), labels, 2)


def _paper_model(input_shape=(8, 32, 32)):
    from mer.models import build_model

    torch.manual_seed(0)
    return build_model(from_dict({}).model, input_shape=input_shape)


def test_l2_applies_to_exactly_the_four_kernels_of_the_paper_model():
    model = _paper_model()
    named = l2_parameters(model)
    shapes = sorted(tuple(p.shape) for _, p in named)
    # Linear(H'W'C → 128), Linear(128 → 64), first Linear (64 → 8) of both channel MLPs
    flat = 64 * 4 * 4  # 32×32 input, two TF-same pools of 3 → 4×4, merge channels 64
    assert shapes == sorted([(128, flat), (64, 128), (8, 64), (8, 64)])
    assert all(name.endswith("weight") for name, _ in named)
    tensors = [p for _, p in named]
    penalty = l2_penalty(tensors, 0.01)
    expected = 0.01 * sum(float((p.detach().double() ** 2).sum()) for p in tensors)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    model.zero_grad()
    penalty.backward()
    with_grad = {
        n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert with_grad == {n for n, _ in named}
    for _, p in named:  # d/dw 0.01·Σw² = 0.02·w
        torch.testing.assert_close(p.grad, 0.02 * p.detach())
    assert l2_penalty(tensors, 0.0) is None


def test_l2_lookup_without_method_uses_tagged_linears():
    net = TinyNet()
    plain = torch.nn.Sequential(net.fc, net.out)  # no l2_parameters(); fc carries the tag
    assert [n for n, _ in l2_parameters(plain)] == ["0.weight"]
    assert [n for n, _ in l2_parameters(net)] == ["fc.weight"]


def test_optimizer_and_schedule_follow_config():
    net = TinyNet()
    cfg = TrainConfig(lr=0.5, betas=[0.8, 0.9], eps=1e-7, lr_step=3, lr_gamma=0.1)
    opt = build_optimizer(net, cfg, torch.device("cpu"))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adam)
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        0.5,
        (0.8, 0.9),
        1e-7,
        0,
    )
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5] * 3 + [0.05] * 3 + [0.005])
    assert build_scheduler(opt, TrainConfig(lr_step=0)) is None


# ---------------------------------------------------------------------------- augmentation
def _pair(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, 2, 5, 5, generator=g)
    b = torch.rand(n, 3, 2, 5, 5, generator=g)
    return a, b


def test_augment_disabled_returns_inputs_unchanged():
    a, b = _pair()
    assert not augment_enabled(AugmentConfig())
    out = augment_pair(a, b, AugmentConfig(), torch.Generator().manual_seed(0))
    assert out[0] is a and out[1] is b


def test_flip_is_shared_by_both_branches_and_frames():
    a, b = _pair(n=16)
    fa, fb = augment_pair(a, b, AugmentConfig(flip=True), torch.Generator().manual_seed(1))
    flipped_a = [torch.equal(fa[i], a[i].flip(-1)) for i in range(16)]
    flipped_b = [torch.equal(fb[i], b[i].flip(-1)) for i in range(16)]
    kept_a = [torch.equal(fa[i], a[i]) for i in range(16)]
    assert flipped_a == flipped_b
    assert all(f != k for f, k in zip(flipped_a, kept_a))
    assert 0 < sum(flipped_a) < 16


def test_brightness_multiplies_per_clip_within_range_and_clips():
    a, b = _pair(n=8)
    fa, fb = augment_pair(a, b, AugmentConfig(brightness=0.5), torch.Generator().manual_seed(2))
    assert fa.min() >= 0 and fa.max() <= 1
    small = a < 0.5  # not clipped at 1 even with factor 1.5
    ratio = (fa[small] / a[small]).reshape(-1)
    assert ratio.min() >= 0.5 - 1e-6 and ratio.max() <= 1.5 + 1e-6
    for i in range(8):  # one factor per clip, the same for both branches
        m = (a[i] > 0.05) & (a[i] < 0.6)
        r = fa[i][m] / a[i][m]
        assert torch.allclose(r, r[0].expand_as(r), atol=1e-5)
        mb = (b[i] > 0.05) & (b[i] < 0.6)
        assert torch.allclose(fb[i][mb] / b[i][mb], r[0].expand(int(mb.sum())), atol=1e-5)


def test_rotation_small_and_deterministic():
    a, b = _pair(n=4)
    cfg = AugmentConfig(rotate=10.0)
    r1 = augment_pair(a, b, cfg, torch.Generator().manual_seed(3))
    r2 = augment_pair(a, b, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])
    assert r1[0].shape == a.shape and not torch.equal(r1[0], a)
    # a constant image stays constant (border padding)
    const = torch.full((2, 3, 2, 7, 7), 0.25)
    out, _ = augment_pair(
        const, const, AugmentConfig(rotate=30.0), torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, const)


def test_shared_branch_tensor_is_transformed_once():
    a, _ = _pair()
    fa, fb = augment_pair(a, a, AugmentConfig(flip=True, brightness=0.2), torch.Generator())
    assert fa is fb


# ------------------------------------------------------------------------------ device data
def _rows(fold):
    return {"train": fold.train, "val": fold.val, "test": fold.test}


def test_fold_tensors_fixed_scaling_and_layout():
    data = tiny_data()
    rows = {"train": np.array([0, 2, 5]), "val": np.array([7]), "test": np.array([1, 3])}
    t = FoldTensors(data, rows, torch.device("cpu"), scaling="fixed")
    assert t.sizes == {"train": 3, "val": 1, "test": 2} and t.clip_shape == (4, 8, 8)
    xa, xb = t.model_inputs(*t.batch("test", torch.tensor([1, 0])))
    expected = torch.from_numpy(data.global_clips[[3, 1]]).permute(0, 4, 1, 2, 3).float() / 255
    assert torch.equal(xa, expected) and xa.is_contiguous()
    expected_b = torch.from_numpy(data.region_clips[[3, 1]]).permute(0, 4, 1, 2, 3).float() / 255
    assert torch.equal(xb, expected_b)


def test_fold_tensors_shared_branch_without_regions():
    data = tiny_data(regions=False)
    rows = {"train": np.array([0, 1]), "val": np.zeros(0, np.int64), "test": np.array([2])}
    t = FoldTensors(data, rows, torch.device("cpu"))
    assert t.shared_branches
    xa, xb = t.model_inputs(*t.batch("train", torch.tensor([0, 1])))
    assert xa is xb


def test_channels_last_layout_when_requested():
    data = tiny_data()
    rows = {"train": np.array([0, 1]), "val": np.zeros(0, np.int64), "test": np.array([2])}
    t = FoldTensors(data, rows, torch.device("cpu"), channels_last=True)
    xa, _ = t.model_inputs(*t.batch("train", torch.tensor([0, 1])))
    assert xa.is_contiguous(memory_format=torch.channels_last_3d)


def test_train_stats_come_from_training_rows_only():
    data = tiny_data()
    rows = {"train": np.array([0, 1, 2, 6]), "val": np.array([8]), "test": np.array([3, 4])}
    t = FoldTensors(data, rows, torch.device("cpu"), scaling="train_stats")
    g = data.global_clips[rows["train"]].astype(np.float64) / 255
    np.testing.assert_allclose(t.stats["a"][0].numpy(), g.mean(axis=(0, 1, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(t.stats["a"][1].numpy(), g.std(axis=(0, 1, 2, 3)), rtol=1e-8)
    r = data.region_clips[rows["train"]].astype(np.float64) / 255
    np.testing.assert_allclose(t.stats["b"][0].numpy(), r.mean(axis=(0, 1, 2, 3)), rtol=1e-10)
    changed = tiny_data()
    changed.global_clips[[3, 4, 8]] = 255
    changed.region_clips[[3, 4, 8]] = 0
    t2 = FoldTensors(changed, rows, torch.device("cpu"), scaling="train_stats")
    for k in ("a", "b"):
        assert torch.equal(t.stats[k][0], t2.stats[k][0])
        assert torch.equal(t.stats[k][1], t2.stats[k][1])
    xa, _ = t.model_inputs(*t.batch("train", torch.arange(4)))
    np.testing.assert_allclose(xa.double().mean(dim=(0, 2, 3, 4)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(
        xa.double().std(dim=(0, 2, 3, 4), unbiased=False).numpy(), 1.0, atol=1e-4
    )


def test_runtime_auto_on_cuda_is_fp32_contiguous(monkeypatch):
    """`auto` on CUDA follows the measured H100 figures: fp32 beats bf16 at batch 8."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    rt = resolve_runtime(TrainConfig())
    assert rt.device.type == "cuda" and rt.amp_dtype is None and rt.channels_last is False
    rt = resolve_runtime(TrainConfig(precision="bf16", channels_last="on"))
    assert rt.amp_dtype == torch.bfloat16 and rt.channels_last is True
    rt = resolve_runtime(TrainConfig(device="cpu"))
    assert rt.device.type == "cpu"


def test_runtime_resolution_on_cpu():
    rt = resolve_runtime(TrainConfig())
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        assert rt.amp_dtype is None and rt.channels_last is False
        with pytest.raises(ConfigError, match="cuda requested"):
            resolve_runtime(TrainConfig(device="cuda"))
        rt = resolve_runtime(TrainConfig(precision="bf16", channels_last="on"))
        assert rt.amp_dtype == torch.bfloat16 and rt.channels_last
