"""The network: exact parameter counts, shapes, gradients, determinism, every switch, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mer.config import ModelConfig, from_dict, replace, variant_config
from mer.errors import ConfigError
from mer.models import PRESETS, build_model
from mer.models.blocks import CBAM, ECCBAM, MSMH, ConcatPool, LastPool, MeanPool, MHAPool
from mer.models.init import TRUNCATION_STD
from mer.models.network import count_parameters, l2_parameters, parameter_breakdown
from mer.models.presets import SMIC_ABLATIONS

SMALL = (10, 32, 32)  # T' = 2 steps, 4×4 maps: fast, and the GRU sees more than one step


def meta_count(cfg: ModelConfig, shape=(30, 128, 128)) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(cfg, input_shape=shape))


def clip(batch=2, shape=SMALL, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x_a = torch.randn(batch, 3, *shape, generator=gen)
    return x_a, torch.randn(batch, 3, *shape, generator=gen)


# ------------------------------------------------------------------------------ exact counts


def test_casme2_parameter_count_and_breakdown_match_model_md():
    model = build_model(PRESETS["casme2"])
    assert count_parameters(model) == 3_817_055
    assert parameter_breakdown(model) == {
        "branch_a": 12_032,
        "branch_b": 2_624,
        "merge": 110_656,
        "attention": 2_192 + 3_520,
        "steps": 1_843_328 + 8_256,
        "recurrent": 887_808,
        "pool": 872_780,
        "head": 65_408 + 8_256 + 195,
    }


@pytest.mark.parametrize(
    ("preset", "shape", "expected"),
    [
        ("casme2", (30, 128, 128), 3_817_055),
        ("samm", (30, 128, 128), 3_817_055),
        ("smic", (10, 128, 128), 2_836_759),
        ("casme3", (30, 128, 128), 10_362_463),
        ("deception", (16, 128, 128), 7_103_190),
        ("casme_sq", (8, 128, 128), 10_362_528),  # casme3's size, 4 outputs: 8→4→2 steps
        ("meview", (8, 128, 128), 10_362_528),
    ],
)
def test_preset_parameter_counts(preset, shape, expected):
    assert meta_count(PRESETS[preset], shape) == expected


def test_casme3_and_deception_sizes_come_from_pool_and_extra_attention():
    with torch.device("meta"):
        casme3 = build_model(PRESETS["casme3"])
        deception = build_model(PRESETS["deception"], input_shape=(16, 128, 128))
    assert casme3.feature_shape == (8, 32, 32)
    assert casme3.steps.layers[1].in_features == 65_536
    assert deception.feature_shape == (2, 15, 15)
    assert isinstance(deception.pool, ConcatPool)
    assert [type(p) for p in deception.pool.pools] == [MSMH, MHAPool]
    assert count_parameters(deception.pool.pools[1]) == 4_200_960
    assert deception.head.layers[1].in_features == 510 + 512
    # casme3: Dropout(0.3) after head layers 1 and 2
    drops = [m.p for m in casme3.head.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.3, 0.3]


def test_smic_ablation_rows():
    expected = {
        "single_ce": 986_467,
        "single_wce": 986_467,
        "single_lstm": 2_227_555,  # Keras: 2,225,507 (one LSTM bias, not two)
        "single_gru": 1_931_619,
        "single_gru_cbam": 1_932_598,
        "dual_cbam": 1_962_870,
        "dual_ec_cbam": 1_964_235,
        "dual_ec_cbam_mha": 10_365_643,  # paper: 10.5 M
        "dual_ec_cbam_msmh": 2_836_759,  # paper: 2.8 M
    }
    assert set(SMIC_ABLATIONS) == set(expected)
    for name, overrides in SMIC_ABLATIONS.items():
        cfg = from_dict(
            {
                "model": {"preset": "smic"},
                "data": {"frames": {"count": 10}},
                "ablations": {name: overrides},
            }
        )
        vcfg = variant_config(cfg, name)
        with torch.device("meta"):
            assert count_parameters(build_model(vcfg)) == expected[name], name
    lstm_delta = 4 * 512  # PyTorch LSTM's second bias vector
    assert expected["single_lstm"] - lstm_delta == 4 * (64 * 512 + 512 * 512 + 512) + (
        expected["single_gru"] - 887_808
    )


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("shape", [(8, 32, 32), (10, 64, 64), (30, 32, 32), (10, 32, 48)])
def test_output_shapes_for_input_sizes(shape):
    torch.manual_seed(0)
    model = build_model(PRESETS["casme2"], input_shape=shape).eval()
    x_a, x_b = clip(2, shape)
    with torch.no_grad():
        assert model(x_a, x_b).shape == (2, 3)
    t, h, w = shape
    assert model.feature_shape == tuple(math.ceil(math.ceil(n / 3) / 3) for n in shape)
    assert (
        model.steps.layers[1].in_features
        == math.ceil(math.ceil(h / 3) / 3) * math.ceil(math.ceil(w / 3) / 3) * 64
    )


def test_paper_size_forward_once():
    torch.manual_seed(0)
    model = build_model(PRESETS["casme2"]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 30, 128, 128), torch.randn(1, 3, 30, 128, 128))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_other_frame_counts_work_after_build():
    model = build_model(PRESETS["casme2"], input_shape=SMALL).eval()
    x = torch.randn(1, 3, 20, 32, 32)
    with torch.no_grad():
        assert model(x, x).shape == (1, 3)


def test_input_errors_are_clear():
    model = build_model(PRESETS["casme2"], input_shape=SMALL)
    x_a, x_b = clip()
    with pytest.raises(ValueError, match=r"built for input_shape=\(10, 32, 32\)"):
        model(torch.randn(2, 3, 10, 64, 64), torch.randn(2, 3, 10, 64, 64))
    with pytest.raises(ValueError, match="needs the branch-B clip"):
        model(x_a)
    with pytest.raises(ValueError, match="x_b: expected the shape of x_a"):
        model(x_a, x_b[:1])


# ------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"attention": "cbam", "recurrent": "lstm", "pooling": "last"},
        {"attention": "ec_cbam_sequential", "pooling": "mha"},
        {"branches": "single", "attention": "ec_cbam_sum", "pooling": "mean"},
        {"recurrent": "none", "msmh_scales": [2, 4, 8, 64]},
    ],
)
def test_gradients_reach_every_parameter(overrides):
    torch.manual_seed(0)
    model = build_model(replace(PRESETS["casme2"], **overrides), input_shape=SMALL).train()
    x_a, x_b = clip(4)
    model(x_a, x_b).square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_gradients_reach_every_parameter_of_deception_preset():
    torch.manual_seed(0)
    model = build_model(PRESETS["deception"], input_shape=(16, 32, 32)).train()
    x_a, x_b = clip(4, (16, 32, 32))
    model(x_a, x_b).square().sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []


# ------------------------------------------------------------------------------ determinism


def test_same_seed_same_weights_and_outputs():
    def run():
        torch.manual_seed(123)
        model = build_model(PRESETS["casme2"], input_shape=SMALL)
        x_a, x_b = clip()
        torch.manual_seed(7)
        train_out = model.train()(x_a, x_b)
        return model.state_dict(), train_out, model.eval()(x_a, x_b)

    s1, t1, e1 = run()
    s2, t2, e2 = run()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert torch.equal(t1, t2) and torch.equal(e1, e2)
    torch.manual_seed(124)
    other = build_model(PRESETS["casme2"], input_shape=SMALL).state_dict()
    assert not torch.equal(other["branch_a.conv.weight"], s1["branch_a.conv.weight"])


def test_channels_last_and_bf16_autocast_agree():
    torch.manual_seed(0)
    model = build_model(PRESETS["casme2"], input_shape=SMALL).eval()
    x_a, x_b = clip()
    with torch.no_grad():
        ref = model(x_a, x_b)
        cl = model.to(memory_format=torch.channels_last_3d)(
            x_a.to(memory_format=torch.channels_last_3d),
            x_b.to(memory_format=torch.channels_last_3d),
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x_a, x_b)
    assert torch.allclose(cl, ref, atol=1e-5)
    # bf16 keeps ~3 significant digits: relative error of the logits well under 2 %
    assert torch.isfinite(bf).all()
    assert (bf.float() - ref).norm() / ref.norm() < 2e-2


# ------------------------------------------------------------------------------ switches


def test_single_branch_has_no_branch_b_and_ignores_x_b():
    cfg = replace(PRESETS["casme2"], branches="single")
    torch.manual_seed(0)
    model = build_model(cfg, input_shape=SMALL).eval()
    assert model.branch_b is None and "branch_b" not in parameter_breakdown(model)
    assert model.merge.conv.in_channels == cfg.conv_a_channels
    x_a, x_b = clip()
    with torch.no_grad():
        assert torch.equal(model(x_a), model(x_a, x_b))
    # no conv3 branch (2,624) and a merge conv with 32 instead of 64 inputs (27·32·64 fewer)
    assert meta_count(PRESETS["casme2"]) - meta_count(cfg) == 2_624 + 27 * 32 * 64


@pytest.mark.parametrize(
    ("attention", "kind", "params"),
    [
        ("none", nn.Identity, 0),
        ("cbam", CBAM, 1_096 + 687),
        ("ec_cbam", ECCBAM, 5_712),
        ("ec_cbam_sum", ECCBAM, 5_712),
        ("ec_cbam_sequential", ECCBAM, 5_712),
    ],
)
def test_attention_switch(attention, kind, params):
    cfg = replace(PRESETS["casme2"], attention=attention)
    with torch.device("meta"):
        model = build_model(cfg)
    assert type(model.attention) is kind
    assert count_parameters(model.attention) == params
    assert count_parameters(model) == 3_817_055 - 5_712 + params
    if kind is ECCBAM:
        assert model.attention.variant == attention


@pytest.mark.parametrize(
    ("recurrent", "params"),
    [("gru", 887_808), ("lstm", 4 * (64 * 512 + 512 * 512 + 2 * 512)), ("none", 0)],
)
def test_recurrent_switch(recurrent, params):
    cfg = replace(PRESETS["casme2"], recurrent=recurrent, pooling="mean")
    with torch.device("meta"):
        model = build_model(cfg)
    assert count_parameters(model.recurrent) == params
    if recurrent == "none":
        assert isinstance(model.recurrent, nn.Identity)
        assert model.head.layers[0].in_features == 64  # per-step features go straight to pooling
    else:
        expected = nn.GRU if recurrent == "gru" else nn.LSTM
        assert type(model.recurrent.rnn) is expected
        assert model.head.layers[0].in_features == 512


@pytest.mark.parametrize(
    ("pooling", "kind", "params", "head_in"),
    [
        ("msmh", MSMH, 872_780, 510),
        ("mha", MHAPool, 4 * 512 * 512 + 4 * 512, 512),  # = nn.MultiheadAttention(512, 8)
        ("msmh_mha", ConcatPool, 872_780 + 4 * 512 * 512 + 4 * 512, 1_022),
        ("mean", MeanPool, 0, 512),
        ("last", LastPool, 0, 512),
    ],
)
def test_pooling_switch(pooling, kind, params, head_in):
    cfg = replace(PRESETS["casme2"], pooling=pooling)
    with torch.device("meta"):
        model = build_model(cfg)
    assert type(model.pool) is kind
    assert count_parameters(model.pool) == params
    assert model.head.layers[0].in_features == head_in
    if pooling in ("mean", "last"):
        assert not any(isinstance(m, MSMH) for m in model.modules())


def test_mha_switch_key_dim_and_causal():
    torch.manual_seed(0)
    cfg = replace(PRESETS["casme2"], pooling="mha", mha_heads=8, mha_key_dim=512)
    with torch.device("meta"):
        assert count_parameters(build_model(cfg).pool) == 8_401_408
    causal = build_model(replace(cfg, mha_key_dim=8, mha_causal=True), input_shape=SMALL)
    assert causal.pool.causal and causal.pool.key_dim == 8


def test_sizes_and_dropout_switches():
    cfg = replace(
        PRESETS["casme2"],
        conv_a_channels=8,
        conv_a_kernel=3,
        conv_b_channels=4,
        merge_channels=16,
        attention_reduction=4,
        dense=[32, 16, 8],
        dropout=0.25,
        dense_out_dropout=0.1,
        recurrent_units=64,
        msmh_scales=[2, 4],
        head=[20],
        head_in_dropout=0.2,
        head_dropout=0.15,
        num_classes=5,
        pool=2,
    )
    torch.manual_seed(0)
    model = build_model(cfg, input_shape=(9, 20, 20))
    assert model.branch_a.conv.out_channels == 8 and model.branch_a.conv.kernel_size == (3, 3, 3)
    assert model.merge.conv.in_channels == 12 and model.merge.conv.out_channels == 16
    assert model.feature_shape == (3, 5, 5)
    assert model.steps.layers[1].in_features == 5 * 5 * 16
    step_drops = [m.p for m in model.steps.modules() if isinstance(m, nn.Dropout)]
    assert step_drops == [0.25, 0.25, 0.25, 0.1]
    head_drops = [m.p for m in model.head.modules() if isinstance(m, nn.Dropout)]
    assert head_drops == [0.2, 0.15]
    assert model.pool.dims == [32, 16]
    assert model.branch_a.pool.kernel == 2
    x = torch.randn(2, 3, 9, 20, 20)
    assert model(x, x).shape == (2, 5)


def test_no_dense_no_head_layers():
    cfg = replace(PRESETS["casme2"], dense=[], head=[], recurrent_units=16, msmh_scales=[2])
    model = build_model(cfg, input_shape=SMALL)
    assert model.recurrent.rnn.input_size == 4 * 4 * 64
    assert [type(m) for m in model.head.layers] == [nn.Linear]
    x_a, x_b = clip()
    assert model(x_a, x_b).shape == (2, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"recurrent": "none"}, r"model\.msmh_scales: scale 128 .* between 1 and 64"),
        ({"attention_reduction": 128}, r"model\.attention_reduction: 128 leaves 64 // 128 = 0"),
        ({"pooling": "mha", "mha_heads": 1024}, r"model\.mha_heads"),
        ({"dense": [], "dense_out_dropout": 0.2}, r"model\.dense_out_dropout"),
        ({"merge_channels": 0}, r"model\.merge_channels"),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(replace(PRESETS["casme2"], **overrides), input_shape=SMALL)


def test_build_from_experiment_config_uses_data_shape():
    cfg = from_dict({"model": {"preset": "smic"}, "data": {"frames": {"count": 10}}})
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.input_shape == (10, 128, 128) and count_parameters(model) == 2_836_759
    with torch.device("meta"):
        assert build_model(cfg, input_shape=(10, 64, 64)).input_shape == (10, 64, 64)


# ------------------------------------------------------------------------------ init & L2


def test_keras_init_rules_on_the_network():
    torch.manual_seed(0)
    model = build_model(PRESETS["casme2"], input_shape=(10, 64, 64))
    for conv in (model.branch_a.conv, model.branch_b.conv, model.merge.conv):
        fan_in = conv.in_channels * math.prod(conv.kernel_size)
        sigma = math.sqrt(2 / fan_in) / TRUNCATION_STD
        assert conv.weight.abs().max() <= 2 * sigma
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    big = model.steps.layers[1]  # he_normal, fan_in = 8·8·64
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / 4096), rel=0.02)
    first_att = model.attention.channel.fc_avg[0]  # glorot_uniform
    assert first_att.weight.abs().max() <= math.sqrt(6 / (64 + 8))
    spatial = model.attention.spatial.conv  # glorot_uniform over (3,3,3,2,64)
    assert spatial.weight.abs().max() <= math.sqrt(6 / (2 * 27 + 64 * 27))
    last = model.head.layers[-1]
    assert last.weight.abs().max() <= math.sqrt(6 / (64 + 3))
    w_hh = model.recurrent.rnn.weight_hh_l0
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(512), atol=1e-4)
    biases = [p for n, p in model.named_parameters() if n.endswith("bias") or "bias_" in n]
    assert biases and all((b == 0).all() for b in biases)


def test_torch_init_keeps_pytorch_defaults():
    torch.manual_seed(0)
    model = build_model(replace(PRESETS["casme2"], init="torch"), input_shape=SMALL)
    assert model.branch_a.conv.bias.abs().max() > 0  # PyTorch's default biases are not zero
    fan_in = 3 * 125
    assert model.branch_a.conv.weight.abs().max() <= 1 / math.sqrt(fan_in)  # kaiming_uniform(√5)


def test_l2_parameters_are_the_originals_regularised_kernels():
    model = build_model(PRESETS["casme2"], input_shape=SMALL)
    shapes = sorted(tuple(p.shape) for p in l2_parameters(model))
    assert shapes == sorted([(128, 4 * 4 * 64), (64, 128), (8, 64), (8, 64)])
    assert model.l2_parameters()[0] is l2_parameters(model)[0]


def test_loop_recurrent_allows_vmap_over_stacked_models():
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    from mer.models.network import set_recurrent_impl

    torch.manual_seed(0)
    models = [set_recurrent_impl(build_model(PRESETS["casme2"], input_shape=SMALL), "loop").eval()
              for _ in range(2)]  # fmt: skip
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(2, 2, 3, *SMALL)

    def one(p, b, clip_):
        return functional_call(base, (p, b), (clip_, clip_))

    out = vmap(one)(params, buffers, x)
    with torch.no_grad():
        ref = torch.stack(
            [set_recurrent_impl(m, "torch")(x[i], x[i]) for i, m in enumerate(models)]
        )
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match="expected torch or loop"):
        set_recurrent_impl(models[0], "cudnn")
