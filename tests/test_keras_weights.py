"""Keras checkpoints: mer computes the original Keras model's function (fixture), and the HDF5
reader/writer round-trips, follows the documented layout and explains every bad file."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mer.config import replace
from mer.errors import ConfigError, DataError
from mer.models import PRESETS, build_model, load_keras_weights, save_keras_weights
from mer.models.keras_layout import keras_layout

REPO = Path(__file__).resolve().parents[1]
SMALL_SHAPE = (10, 32, 32)
SMALL = replace(
    PRESETS["casme2"],
    conv_a_channels=4,
    conv_b_channels=6,
    merge_channels=8,
    attention_reduction=4,
    dense=[16, 8],
    recurrent_units=16,
    msmh_scales=[2, 4, 8],
    head=[12],
)


def fixture_dir() -> Path | None:
    folder = Path(os.environ.get("MER_EQUIVALENCE_DIR") or REPO.parent / "shared" / "equivalence")
    return folder if (folder / "casme2_expected.json").is_file() else None


needs_fixture = pytest.mark.skipif(
    fixture_dir() is None,
    reason="Keras equivalence fixture not available (set MER_EQUIVALENCE_DIR)",
)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (biases too: zero biases would hide bias-layout mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def clips(shape, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *shape, generator=gen), torch.randn(
        batch, 3, *shape, generator=gen
    )


def datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.update({n: o[()]}) if isinstance(o, h5py.Dataset) else None)
    return out


def as_full_model_file(src: Path, dst: Path) -> Path:
    """What the original's ModelCheckpoint writes: the same groups under /model_weights."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g.attrs["model_config"] = '{"class_name": "Functional"}'
        weights = g.create_group("model_weights")
        for key, value in f.attrs.items():
            weights.attrs[key] = value
        for name in f:
            f.copy(f[name], weights, name=name)
    return dst


# ------------------------------------------------------------------------------ the Keras fixture


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recipe_inputs(spec: dict) -> list[np.ndarray]:
    """The fixture's input: array i = default_rng(i).uniform(-1, 1, shape) as float32."""
    shape = tuple(spec["shape"])
    xs = [
        np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)
        for seed in range(spec["n_arrays"])
    ]
    for x, check in zip(xs, spec["checksum"], strict=True):
        assert x.reshape(-1)[:3].tolist() == check["first3"]
        assert abs(float(x.astype(np.float64).sum()) - check["sum_float64"]) < 1e-6 * x.size
    return xs


def keras_logits(model: torch.nn.Module, xs: list[np.ndarray]) -> np.ndarray:
    """mer's logits for the Keras NDHWC inputs (SMIC: its one Keras input feeds both branches)."""
    ncdhw = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))) for x in xs]
    xa, xb = ncdhw[0], ncdhw[-1]
    with torch.no_grad():
        return model.eval()(xa, xb).double().numpy()


def fixture_case(preset: str) -> tuple[dict, Path, list[np.ndarray]]:
    folder = fixture_dir()
    spec = json.loads((folder / f"{preset}_expected.json").read_text())
    assert spec["preset"] == preset
    return spec, folder / spec["weights"]["file"], recipe_inputs(spec["input"])


def fixture_model(preset: str, spec: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(PRESETS[preset], input_shape=(spec["input"]["shape"][1], 128, 128))


def logit_error(model, spec, xs) -> float:
    return float(np.abs(keras_logits(model, xs) - np.array(spec["logits"])).max())


@needs_fixture
@pytest.mark.parametrize("form", ["weights", "full_model"])
@pytest.mark.parametrize("preset", ["casme2", "smic"])
def test_keras_checkpoint_gives_the_keras_logits(preset, form, tmp_path, one_thread):
    spec, h5, xs = fixture_case(preset)
    if form == "full_model":
        h5 = as_full_model_file(h5, tmp_path / "checkpoint.hdf5")
    model = load_keras_weights(fixture_model(preset, spec), h5)
    logits = keras_logits(model, xs)
    expected = np.array(spec["logits"])
    assert logits.shape == expected.shape == (2, 3)
    assert np.abs(logits - expected).max() <= spec["tolerance_abs"]
    assert np.array_equal(logits.argmax(-1), expected.argmax(-1))
    # the Keras probabilities are the softmax of these logits
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    assert np.abs(probs - np.array(spec["probabilities"])).max() <= spec["tolerance_abs"]


@needs_fixture
@pytest.mark.parametrize("preset", ["casme2", "smic"])
def test_mapping_mistakes_miss_the_keras_logits_by_far(preset, tmp_path, one_thread):
    """Negative controls: the check above can fail."""
    spec, h5, xs = fixture_case(preset)
    far = 100 * spec["tolerance_abs"]
    model = load_keras_weights(fixture_model(preset, spec), h5)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    # GRU gates left in Keras's z, r, h order
    wrong = dict(good)
    for key in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        r, z, n = good[f"recurrent.rnn.{key}"].chunk(3)
        wrong[f"recurrent.rnn.{key}"] = torch.cat([z, r, n])
    model.load_state_dict(wrong)
    assert logit_error(model, spec, xs) > far
    # one dataset perturbed in the file: the GRU's input and recurrent bias rows swapped
    perturbed = tmp_path / "perturbed.h5"
    perturbed.write_bytes(h5.read_bytes())
    with h5py.File(perturbed, "r+") as f:
        bias = f["gru/gru/gru_cell/bias:0"]
        bias[...] = bias[()][::-1]
    load_keras_weights(model, perturbed)
    assert logit_error(model, spec, xs) > far
    load_keras_weights(model, h5)  # and the same model is back within tolerance
    assert logit_error(model, spec, xs) <= spec["tolerance_abs"]


@needs_fixture
@pytest.mark.parametrize("preset", ["casme2", "smic"])
def test_saving_writes_the_keras_file_back_exactly(preset, tmp_path):
    spec, h5, _ = fixture_case(preset)
    model = load_keras_weights(fixture_model(preset, spec), h5)
    out = save_keras_weights(model, tmp_path / "again.h5")
    with h5py.File(out, "r") as f, h5py.File(h5, "r") as g:
        names = [str(n) for n in g.attrs["layer_names"]]
        assert [str(n) for n in f.attrs["layer_names"]] == names == spec["layer_names_in_h5"]
        for name in names:
            assert list(f[name].attrs["weight_names"]) == list(g[name].attrs["weight_names"])
    mine, theirs = datasets(out), datasets(h5)
    assert list(mine) == list(theirs) and len(mine) == 93
    for name, array in theirs.items():
        assert mine[name].dtype == array.dtype == np.float32
        assert np.array_equal(mine[name], array), name


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (SMALL, SMALL_SHAPE),
        (PRESETS["casme2"], (10, 128, 128)),
        (PRESETS["smic"], (10, 128, 128)),
        (PRESETS["casme3"], (10, 128, 128)),
    ],
    ids=["small", "casme2", "smic", "casme3"],
)
def test_round_trip_gives_the_same_weights_and_outputs(cfg, shape, tmp_path):
    torch.manual_seed(0)
    source = randomized(build_model(cfg, input_shape=shape)).eval()
    path = save_keras_weights(source, tmp_path / "w.h5")
    torch.manual_seed(1)
    target = build_model(cfg, input_shape=shape).eval()
    assert load_keras_weights(target, path) is target
    a, b = source.state_dict(), target.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x_a, x_b = clips((4, *shape[1:]), batch=1)
    with torch.no_grad():
        assert torch.equal(source(x_a, x_b), target(x_a, x_b))
    full = as_full_model_file(path, tmp_path / "full.hdf5")
    again = load_keras_weights(build_model(cfg, input_shape=shape), full).state_dict()
    assert all(torch.equal(a[k], again[k]) for k in a)


def test_saved_file_follows_the_documented_keras_layout(tmp_path):
    """Independent of load: the README's layer names and mapping rules, entry by entry."""
    torch.manual_seed(0)
    model = randomized(build_model(PRESETS["casme2"]))
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    path = save_keras_weights(model, tmp_path / "casme2.h5")
    with h5py.File(path, "r") as f:
        assert [str(n) for n in f.attrs["layer_names"]] == [
            "input_1", "input_2", "conv3d", "conv3d_1", "leaky_re_lu", "leaky_re_lu_1",
            "max_pooling3d", "max_pooling3d_1", "concatenate", "conv3d_2", "leaky_re_lu_2",
            "max_pooling3d_2", "cbam_module", "time_distributed", "dropout", "time_distributed_1",
            "leaky_re_lu_5", "dropout_1", "time_distributed_2", "leaky_re_lu_6", "gru",
            "multi_scale_multi_head_attention", "dense_38", "leaky_re_lu_7", "dense_39",
            "leaky_re_lu_8", "dense_40",
        ]  # fmt: skip
        assert f.attrs["backend"] == "tensorflow" and f.attrs["keras_version"].startswith("2.")
        assert list(f["input_1"].attrs["weight_names"]) == []
        k = f["conv3d/conv3d/kernel:0"][()]
        assert k.shape == (5, 5, 5, 3, 32)
        assert k[1, 2, 3, 2, 7] == sd["branch_a.conv.weight"][7, 2, 1, 2, 3]
        assert f["conv3d_1/conv3d_1/kernel:0"].shape == (3, 3, 3, 3, 32)
        spatial = "cbam_module/cbam_module/spatial_attention/conv3d_3/kernel:0"
        assert np.array_equal(
            f[spatial][()], sd["attention.spatial.conv.weight"].transpose(2, 3, 4, 1, 0)
        )
        assert np.array_equal(
            f["cbam_module/dense_2/kernel:0"][()], sd["attention.channel.fc_max.0.weight"].T
        )
        assert f["time_distributed_1/time_distributed_1/kernel:0"].shape == (14400, 128)
        u = 512  # GRU: Keras gate blocks z, r, h; torch r, z, n
        kernel = f["gru/gru/gru_cell/kernel:0"][()]
        w_ih = sd["recurrent.rnn.weight_ih_l0"]
        assert np.array_equal(kernel[:, :u], w_ih[u : 2 * u].T)  # z
        assert np.array_equal(kernel[:, u : 2 * u], w_ih[:u].T)  # r
        assert np.array_equal(kernel[:, 2 * u :], w_ih[2 * u :].T)  # h = n
        assert np.array_equal(
            f["gru/gru/gru_cell/recurrent_kernel:0"][()][:, :u],
            sd["recurrent.rnn.weight_hh_l0"][u : 2 * u].T,
        )
        bias = f["gru/gru/gru_cell/bias:0"][()]
        assert bias.shape == (2, 3 * u)
        assert np.array_equal(bias[0, :u], sd["recurrent.rnn.bias_ih_l0"][u : 2 * u])
        assert np.array_equal(bias[1, u : 2 * u], sd["recurrent.rnn.bias_hh_l0"][:u])
        msmh = "multi_scale_multi_head_attention/multi_scale_multi_head_attention"
        head = f"{msmh}/single_head_attention_1"
        assert np.array_equal(
            f[f"{head}/dense_11/kernel:0"][()], sd["pool.qkv.weight"][766:894].T
        )  # wk
        assert np.array_equal(
            f[f"{head}/dense_12/bias:0"][()], sd["pool.qkv.bias"][1276:1404]
        )  # wv
        assert np.array_equal(f[f"{head}/dense_13/kernel:0"][()], sd["pool.out.1.weight"].T)
        assert f[f"{msmh}/single_head_attention_7/dense_37/bias:0"].shape == (2,)
        assert np.array_equal(f["dense_40/dense_40/kernel:0"][()], sd["head.layers.4.weight"].T)
    assert len(datasets(path)) == 93
    # SMIC's script has one Input feeding both convolutions: no input_2
    with torch.device("meta"):
        smic = keras_layout(build_model(PRESETS["smic"], input_shape=(10, 128, 128)))
    assert smic.layer_names[:3] == ("input_1", "conv3d", "conv3d_1") and len(smic.layer_names) == 26


def test_input_convolutions_are_matched_by_shape_not_position(tmp_path):
    torch.manual_seed(0)
    model = randomized(build_model(SMALL, input_shape=SMALL_SHAPE))
    path = save_keras_weights(model, tmp_path / "w.h5")
    with h5py.File(path, "r+") as f:  # a session whose graph walk reaches branch B's conv first
        names = [str(n) for n in f.attrs["layer_names"]]
        i, j = names.index("conv3d"), names.index("conv3d_1")
        names[i], names[j] = names[j], names[i]
        f.attrs["layer_names"] = [n.encode() for n in names]
    loaded = load_keras_weights(build_model(SMALL, input_shape=SMALL_SHAPE), path).state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------ bad files


@pytest.fixture
def small_file(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_keras_weights(build_model(SMALL, input_shape=SMALL_SHAPE), tmp_path / "small.h5")


def small_model(**changes):
    return build_model(replace(SMALL, **changes), input_shape=SMALL_SHAPE)


def test_missing_file_and_files_that_are_not_hdf5(tmp_path):
    with pytest.raises(DataError, match=r"nope\.h5: no such Keras weights file"):
        load_keras_weights(small_model(), tmp_path / "nope.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    with pytest.raises(DataError, match=r"notes\.h5: not an HDF5 file; expected a Keras 2"):
        load_keras_weights(small_model(), text)
    archive = tmp_path / "model.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(
        DataError, match=r"model\.keras: not an HDF5 file \(it is a zip archive: a Keras 3"
    ):
        load_keras_weights(small_model(), archive)
    with pytest.raises(DataError, match=r"is a folder \(a TensorFlow SavedModel\?\)"):
        load_keras_weights(small_model(), tmp_path)


def test_truncated_file(small_file):
    data = small_file.read_bytes()
    small_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DataError, match=r"small\.h5: cannot read this HDF5 file \(.*truncated file"
    ):
        load_keras_weights(small_model(), small_file)


def test_dataset_missing_from_the_file(small_file):
    with h5py.File(small_file, "r+") as f:
        del f["gru/gru/gru_cell/bias:0"]
    message = "small.h5: dataset /gru/gru/gru_cell/bias:0 is listed in weight_names of 'gru' but"
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(), small_file)


def test_keras3_layout_is_refused(tmp_path):
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/conv3d/vars/0", data=np.zeros((5, 5, 5, 3, 32), np.float32))
        f.create_group("vars")
    message = "model.weights.h5: Keras 3 weights layout (groups layers/<name>/vars/<i>, no "
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(), path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataError, match=r"other\.h5: HDF5 without Keras's 'layer_names' attribute"):
        load_keras_weights(small_model(), other)


def test_shape_mismatch_names_dataset_parameter_and_fitting_preset(tmp_path):
    shape = (10, 128, 128)
    torch.manual_seed(0)
    path = save_keras_weights(build_model(PRESETS["casme2"], input_shape=shape), tmp_path / "c.h5")
    smic = build_model(PRESETS["smic"], input_shape=shape)
    with pytest.raises(DataError) as err:
        load_keras_weights(smic, path)
    assert str(err.value) == (
        f"{path}: dataset /conv3d_2/conv3d_2/kernel:0 has shape (3, 3, 3, 64, 64), but mer's "
        "merge.conv.weight (merge Conv3d (model.conv_a_channels + model.conv_b_channels → "
        "model.merge_channels, model.merge_kernel)) needs Keras shape (3, 3, 3, 64, 32) (torch "
        "(32, 64, 3, 3, 3)). The file's shapes fit mer.models.PRESETS casme2, samm (built for "
        "H×W = 128×128): build the model from one of them."
    )
    message = (
        "dataset /time_distributed_1/time_distributed_1/kernel:0 has shape (14400, 128), but "
        "mer's steps.layers.1.weight (per-step Linear 1 (model.dense[0]); its input is the pooled "
        "map H'·W'·model.merge_channels = 32·32·C of the model's input_shape (10, 128, 128)) "
        "needs Keras shape (65536, 128)"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(build_model(PRESETS["casme3"], input_shape=shape), path)


def test_shape_mismatch_without_a_fitting_preset(small_file):
    message = (
        "dataset /gru/gru/gru_cell/kernel:0 has shape (8, 48), but mer's "
        "recurrent.rnn.weight_ih_l0 (GRU (model.recurrent_units; input: the last model.dense "
        "width)) needs Keras shape (8, 96) (torch (96, 8)). No preset in mer.models.PRESETS fits "
        "the file at H×W = 32×32."
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(recurrent_units=32), small_file)
    message = (
        "multi_scale_multi_head_attention/single_head_attention/dense_6/kernel:0 has shape "
        "(16, 8), but mer's pool.qkv.weight[0:4] (MSMH (model.msmh_scales over "
        "model.recurrent_units)) needs Keras shape (16, 4) (torch rows of (4, 16))"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(msmh_scales=[4, 2, 8]), small_file)


def test_layer_count_mismatch_says_which_config_key(small_file):
    message = (
        "small.h5: 10 Keras layers with weights [conv3d (2), conv3d_1 (2), conv3d_2 (2), "
        "cbam_module (10), time_distributed_1 (2), time_distributed_2 (2), gru (3), "
        "multi_scale_multi_head_attention (24), dense_18 (2), dense_19 (2)], but this model "
        "needs 9 with [2, 2, 2, 10, 2, 3, 24, 2, 2] weights: the file has 2 per-step Linears, "
        "this model 1 (model.dense). No preset"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(dense=[16]), small_file)
    message = (
        "the file has 3 MSMH scales, this model 2 (model.msmh_scales); the file has 1 hidden "
        "head Linears, this model 0 (model.head). No preset"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(small_model(msmh_scales=[2, 4], head=[]), small_file)


def test_weights_out_of_order_in_a_layer(small_file):
    with h5py.File(small_file, "r+") as f:
        names = list(f["conv3d_2"].attrs["weight_names"])
        f["conv3d_2"].attrs["weight_names"] = [n.encode() for n in names[::-1]]
    message = "dataset /conv3d_2/conv3d_2/bias:0 is a 'bias' where mer's merge.conv.weight"
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError, match=re.escape(message)):
        load_keras_weights(model, small_file)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"recurrent": "lstm", "pooling": "last"},
            r"model\.recurrent: lstm \(the Keras model has a GRU\); model\.pooling: last",
        ),
        (
            {"pooling": "mha", "mha_heads": 2},
            r"model\.pooling: mha \(the Keras model pools with MSMH: model\.pooling: msmh\)",
        ),
        (
            {"branches": "single"},
            r"model\.branches: single \(the Keras model has two input convolutions\)",
        ),
        ({"attention": "cbam"}, r"model\.attention: cbam \(the Keras CBAMModule is ec_cbam"),
        ({"attention": "ec_cbam_sequential"}, r"model\.attention: ec_cbam_sequential"),
        ({"attention": "none"}, r"model\.attention: none"),
        ({"leaky_slope": 0.1}, r"model\.leaky_slope: \[0\.1\] \(the Keras model uses 0\.2\)"),
    ],
)
def test_architectures_without_keras_counterpart(changes, message, small_file, tmp_path):
    model = small_model(**changes)
    with pytest.raises(
        ConfigError, match=r"no counterpart in the original Keras model.*" + message
    ):
        load_keras_weights(model, small_file)
    with pytest.raises(ConfigError, match=message):
        save_keras_weights(model, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
