"""Smoke tests of bench.throughput (tiny config, CPU) and of the fast paths it measures.

No timing assertions: CPU numbers say nothing about a GPU. What is asserted: the table has the
rows asked for, with finite positive numbers, and every fast path trains the same function as the
plain model (the harness's `check` column, and direct comparisons in float64 below).
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from bench.throughput.cli import run
from bench.throughput.settings import (
    GROUPS,
    TOL_BF16,
    TOL_FP32,
    Setting,
    SettingError,
    expand_settings,
)
from bench.throughput.spec import TINY_MODEL, TINY_SHAPE
from mer.config import replace
from mer.models import PRESETS, build_model
from mer.training import fastpath as fp

FAST = ["--tiny", "--device", "cpu", "--threads", "1", "--steps", "2", "--warmup", "1"]
FAST += ["--repeats", "1", "--check-steps", "2"]


def tiny_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = replace(PRESETS["casme2"], **TINY_MODEL, dropout=dropout)
    return build_model(cfg, input_shape=TINY_SHAPE)


def clips(batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t, h, w = TINY_SHAPE
    return torch.rand(batch, 3, t, h, w, generator=g), torch.rand(batch, 3, t, h, w, generator=g)


# ------------------------------------------------------------------------------- settings
def test_setting_names_are_canonical_and_validated():
    s = Setting.parse("res+bf16+m4+cl+bench")
    assert (s.precision, s.channels_last, s.resident, s.benchmark, s.models) == (
        "bf16",
        True,
        True,
        True,
        4,
    )
    assert s.name == "bf16+cl+res+bench+m4"
    assert s.clips_per_step == 32 and s.tolerance == TOL_BF16
    assert Setting.parse("baseline") == Setting()
    assert Setting.parse("cl+res+b32").same_optimisation == "no (batch 32)"
    for bad, msg in (
        ("cl+fast", "unknown token 'fast'"),
        ("pad8+t2d+res", "alternatives"),
        ("m2+cl", "add res"),
        ("graph", "add res"),
        ("res+m2+compile", "compile with stacked"),
        ("res+graph+compile", "two execution modes"),
    ):
        with pytest.raises(SettingError, match=msg):
            Setting.parse(bad)


def test_groups_expand_with_the_baseline_first():
    settings = expand_settings(["cl", "@cpu", "cl"])
    names = [s.name for s in settings]
    assert names[0] == "baseline" and names.count("cl") == 1 and names.count("baseline") == 1
    for group in GROUPS.values():
        expand_settings(group)  # every group entry parses
    with pytest.raises(SettingError, match="unknown group"):
        expand_settings(["@nope"])


# ------------------------------------------------------------------------------ the harness
def test_tiny_matrix_rows_numbers_and_checks(tmp_path, capsys):
    settings = "baseline,res,cl+res,t2d+cl+res,m2+cl+res,cl+res+p2,res+graph"
    args = [*FAST, "--settings", settings, "--no-ray", "--out", str(tmp_path), "--tag", "smoke"]
    result = run(args)
    rows = {r["setting"]: r for r in result["rows"]}
    assert list(rows) == [
        "baseline",
        "res",
        "cl+res",
        "cl+res+t2d",
        "cl+res+m2",
        "cl+res+p2",
        "res+graph",
    ]
    for name, row in rows.items():
        if name == "res+graph":  # CUDA only: an error row, and the run goes on
            assert row["check"] == "ERROR" and "CUDA" in row["error"]
            continue
        for key in ("clips_s", "tflops", "frac_ceiling", "speedup", "mem_mb", "setup_s"):
            assert math.isfinite(row[key]) and row[key] > 0, (name, key, row[key])
        assert row["check"] == "ok", (name, row)
        assert row["max_rel_diff"] <= row["tol"] == TOL_FP32
        assert row["optim"] == "yes"
    assert rows["baseline"]["speedup"] == pytest.approx(1.0)
    assert rows["cl+res+m2"]["clips_per_step"] == 16
    assert rows["cl+res+p2"]["packing"] == "torch.multiprocessing"  # two spawned processes
    meta = result["meta"]
    assert meta["flops_per_clip"] > 0 and meta["ceiling_tflops"] > 0
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert [r["setting"] for r in saved["rows"]] == list(rows)
    md = (tmp_path / "smoke.md").read_text()
    assert all(f"| {name} |" in md for name in rows)
    out = capsys.readouterr().out
    assert out.count("cl+res+m2") >= 2  # printed as measured and in the final table


def test_time_budget_skips_remaining_rows(tmp_path):
    args = [*FAST, "--check-steps", "0", "--steps", "1"]
    result = run([*args, "--settings", "res,cl", "--time-budget", "1e-9"])
    assert [r["setting"] for r in result["rows"]] == ["baseline"]
    assert result["skipped"] == ["res", "cl"]


def test_e2e_one_fold_and_merge(tmp_path):
    args = [*FAST, "--e2e", "--e2e-epochs", "2", "--e2e-clips", "12", "--e2e-subjects", "3"]
    result = run([*args, "--out", str(tmp_path), "--tag", "e2e"])
    e2e = result["e2e"]
    assert (e2e["epochs"], e2e["train_clips"], e2e["test_clips"]) == (2, 8, 4)
    assert e2e["precision"] == "fp32" and e2e["batch"] == 8
    assert e2e["phases_s"]["train"] > 0 and 0 < e2e["non_training_share"] < 1
    assert e2e["extrapolated_200_epochs"]["train_s"] > e2e["phases_s"]["train"]
    merged = run(["--merge", str(tmp_path / "e2e.json"), "--out", str(tmp_path), "--tag", "all"])
    assert list(merged["parts"]) == ["e2e"]
    assert "One trial end to end" in (tmp_path / "all.md").read_text()


# ------------------------------------------------------------------------------ fast paths
def test_step_gru_equals_nn_gru():
    torch.manual_seed(0)
    gru = nn.GRU(6, 5, batch_first=True).double()
    step = fp.StepGRU(gru)
    x = torch.randn(3, 4, 6, dtype=torch.double, requires_grad=True)
    out, h = step(x)
    ref, ref_h = gru(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(h, ref_h)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("swap", ["t2d", "pad8", "sgru"])
def test_module_swaps_keep_function_gradients_and_state_dict(swap):
    model = tiny_model().double()
    fast = copy.deepcopy(model)
    swap_fn = {
        "t2d": fp.use_time_unfold_convs,
        "pad8": fp.pad_input_channels,
        "sgru": fp.use_step_gru,
    }[swap]
    assert swap_fn(fast) > 0
    assert fast.state_dict().keys() == model.state_dict().keys()
    xa, xb = (x.double() for x in clips())
    torch.testing.assert_close(fast(xa, xb), model(xa, xb))
    fast(xa, xb).square().sum().backward()
    model(xa, xb).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


def test_time_unfold_conv_keeps_channels_last():
    conv = nn.Conv3d(3, 4, 5, padding=2)
    fast = fp.TimeUnfoldConv3d(conv)
    assert fast.channels == 16  # 5 frames × 3 channels, padded to a multiple of 8
    x = torch.rand(2, 3, 6, 10, 12).contiguous(memory_format=torch.channels_last_3d)
    out = fast(x)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, conv(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unsupported"):
        fp.TimeUnfoldConv3d(nn.Conv3d(3, 4, 3, stride=2, padding=1))


def test_clips_to_input_pads_and_converts():
    u8 = torch.randint(0, 256, (2, 4, 5, 6, 3), dtype=torch.uint8)
    x = fp.clips_to_input(u8, channels=8)
    assert x.shape == (2, 8, 4, 5, 6) and x.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(x[:, :3], u8.permute(0, 4, 1, 2, 3).float() / 255)
    assert x[:, 3:].abs().max() == 0
    idx = torch.tensor([[0, 1], [1, 0], [1, 1]])
    s = fp.stacked_inputs(u8, idx)
    assert s.shape == (3, 2, 3, 4, 5, 6)
    torch.testing.assert_close(s[2, 0], x[1, :3])


def test_stacked_models_equal_independent_models():
    models = [tiny_model(seed, dropout=0.5).double() for seed in (0, 1, 2)]
    plain = copy.deepcopy(models)
    stacked = fp.StackedModels(models)
    xa, xb = (x.double() for x in clips(batch=6))
    xa, xb = xa.view(3, 2, *xa.shape[1:]), xb.view(3, 2, *xb.shape[1:])
    stacked.eval()
    out = stacked(xa, xb)
    for m, model in enumerate(plain):
        model.eval()
        torch.testing.assert_close(out[m], model(xa[m], xb[m]))
        model.load_state_dict(stacked.member_state_dict(m))  # loads into the plain model
    # one loss for all members: each member's gradient is its own model's
    y = torch.tensor([[0, 1], [2, 0], [1, 1]])
    w = torch.tensor([0.3, 0.35, 0.35], dtype=torch.double)
    loss, ce = fp.stacked_loss(stacked(xa, xb), y, w, stacked.l2_tensors(), 0.01)
    loss.backward()
    from mer.training.loss import l2_parameters, l2_penalty, weighted_ce

    for m, model in enumerate(plain):
        ce_m = weighted_ce(model(xa[m], xb[m]), y[m], w)
        torch.testing.assert_close(ce[m], ce_m.to(ce.dtype))
        l2 = l2_penalty([p for _, p in l2_parameters(model)], 0.01)
        (ce_m + l2).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(stacked.params[name].grad[m], p.grad, msg=name)
    # training mode: every member draws its own dropout mask (vmap randomness="different")
    twins = fp.StackedModels([tiny_model(0, dropout=0.5) for _ in range(2)])
    a, b = clips(batch=2)
    xa2, xb2 = a.expand(2, *a.shape), b.expand(2, *b.shape)  # the same batch for both
    same = twins.eval()(xa2, xb2)
    torch.testing.assert_close(same[0], same[1])
    drawn = twins.train()(xa2, xb2)
    assert not torch.allclose(drawn[0], drawn[1])


def test_stacked_models_bf16_casts_explicitly_and_keeps_fp32_masters():
    models = [tiny_model(seed) for seed in (0, 1)]
    fp32 = fp.StackedModels(copy.deepcopy(models)).eval()
    bf16 = fp.StackedModels(models, compute_dtype=torch.bfloat16).eval()
    a, b = clips(batch=4)
    xa, xb = a.view(2, 2, *a.shape[1:]), b.view(2, 2, *b.shape[1:])
    out = bf16(xa, xb)
    assert out.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    ref = fp32(xa, xb)
    assert ((out.float() - ref).norm() / ref.norm()).item() < 5e-2
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in bf16.parameters())
