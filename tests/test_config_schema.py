"""The pydantic schema: strict coercion, finite numbers, validation whenever a section is built,
`replace`, model presets as plain data, the layering of mer.config, and configs pickled by the
dataclass config that preceded the schema (an interrupted search's Tune state holds one)."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mer.config import (
    MODEL_PRESETS,
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    FacesConfig,
    FramesConfig,
    ModelConfig,
    ProtocolConfig,
    ReportConfig,
    SourceConfig,
    TrainConfig,
    config_hash,
    from_dict,
    load_config,
    replace,
    to_dict,
    variant_config,
    with_overrides,
)
from mer.config.plain import hash_form
from mer.errors import ConfigError, MerError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    return str(err.value)


# ----------------------------------------------------------------------------- strict coercion
@pytest.mark.parametrize(
    ("section", "key", "value", "typed"),
    [
        ("train", "epochs", 7, 7),
        ("train", "epochs", 7.0, 7),  # an integral float is an integer
        ("train", "lr", 2, 2.0),
        ("train", "lr", "1e-3", 1e-3),  # PyYAML reads `1e-3` (no dot) as a string
        ("train", "compile", True, True),
        ("name", None, 12, "12"),  # a bare number where a string is expected
        ("name", None, 1.5, "1.5"),
        ("protocol", "folds", ("a", 2), ["a", "2"]),  # a tuple is a list
    ],
)
def test_values_that_are_coerced(section, key, value, typed):
    cfg = from_dict({section: value} if key is None else {section: {key: value}})
    got = getattr(cfg, section) if key is None else getattr(getattr(cfg, section), key)
    assert got == typed and type(got) is type(typed)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"compile": "yes"}}, "train.compile: expected true/false, got 'yes'"),
        ({"train": {"compile": 1}}, "train.compile: expected true/false, got 1"),
        ({"train": {"compile": "true"}}, "train.compile: expected true/false, got 'true'"),
        ({"train": {"epochs": "5"}}, "train.epochs: expected an integer, got '5'"),
        ({"train": {"epochs": True}}, "train.epochs: expected an integer, got True"),
        ({"train": {"epochs": 5.5}}, "train.epochs: expected an integer, got 5.5"),
        ({"train": {"lr": True}}, "train.lr: expected a number, got True"),
        ({"train": {"lr": "fast"}}, "train.lr: expected a number, got 'fast'"),
        ({"name": True}, "name: expected a string, got True"),
        ({"name": ["a"]}, "name: expected a string, got ['a']"),
        ({"tracking": {"wandb": {"tags": ["a", False]}}}, "tracking.wandb.tags[1]: expected a"),
        ({"seeds": "1"}, "seeds: expected a list of integers, got '1'"),
        ({"train": {"betas": "x"}}, "train.betas: expected a list of numbers, got 'x'"),
        ({"model": {"msmh_scales": [2, 4.5]}}, "model.msmh_scales[1]: expected an integer, got"),
        ({"data": {"root": [1]}}, "data.root: expected a string, got [1]"),
        ({"data": {"sources": [1]}}, "data.sources: expected a mapping of a mapping, got [1]"),
        ({"data": {"frames": 5}}, "data.frames: expected a mapping, got 5"),
        ({"search": 5}, "search: expected a mapping, got 5"),
        ({"resources": {"wait_for_gpus": "no"}}, "resources.wait_for_gpus: expected true/false"),
        (
            {"search": {"extra_objectives": ["flops"]}, "protocol": {"val_subjects": 1}},
            "search.extra_objectives[0]: expected one of 'params', 'gflops', got 'flops' (did "
            "you mean 'gflops'?)",
        ),
        (
            {"train": {"class_weights": "bal"}},
            "train.class_weights: expected a list of numbers or one of 'balanced' or null, got "
            "'bal'",
        ),
    ],
)
def test_values_that_are_refused_name_the_key_and_the_type(raw, message):
    assert message in _error(raw)


def test_null_sections_take_their_defaults_and_null_search_is_none():
    cfg = from_dict({"train": None, "data": {"frames": None}, "search": None, "ablations": None})
    assert cfg.train == TrainConfig() and cfg.data.frames == FramesConfig()
    assert cfg.search is None and cfg.ablations == {"full": {}}


def test_non_string_keys_are_read_as_strings():
    assert "unknown config key '1'" in _error({1: 5})
    cfg = from_dict({"ablations": {1: {}}})
    assert cfg.variants == ["1"]


# ------------------------------------------------------------------------------ finite numbers
@pytest.mark.parametrize(
    "key",
    [
        "train.lr",
        "train.eps",
        "train.l2",
        "train.lr_gamma",
        "train.augment.rotate",
        "train.augment.brightness",
        "model.dropout",
        "model.head_dropout",
        "model.leaky_slope",
        "data.regions.margin",
        "data.synthetic.intensity",
        "resources.gpu_per_trial",
        "resources.cpu_per_trial",
    ],
)
@pytest.mark.parametrize(("text", "shown"), [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan")])
def test_every_float_must_be_finite(tmp_path, key, text, shown):
    path = tmp_path / "s.yaml"
    path.write_text("name: finite\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, [f"{key}={text}"])
    assert str(err.value) == f"{path}: {key}: expected a finite number, got {shown}"
    with pytest.raises(ConfigError) as err:
        load_config(path, [f"ablations.odd.{key}={text}"])
    assert str(err.value) == f"{path}: ablations.odd: {key}: expected a finite number, got {shown}"


def test_finite_number_in_the_search_section_and_as_a_string():
    message = _error({"protocol": {"val_subjects": 1}, "search": {"pruner_p": math.inf}})
    assert message == "search.pruner_p: expected a finite number, got inf"
    assert _error({"train": {"lr": "nan"}}) == "train.lr: expected a finite number, got 'nan'"


def test_non_finite_weights_and_betas_keep_their_rules_words():
    assert "train.class_weights[1]: expected a weight >= 0, got inf" in _error(
        {"train": {"class_weights": [1, math.inf, 1]}}
    )
    assert "train.betas[1]: expected a value in [0, 1), got nan" in _error(
        {"train": {"betas": [0.9, math.nan]}}
    )


# ------------------------------------------------------------------- validated whenever built
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ModelConfig(pool=0), "model.pool: expected a value in [1, inf], got 0"),
        (lambda: ModelConfig(dropout=1.5), "model.dropout: expected a value in [0.0, 0.99], got"),
        (lambda: ModelConfig(dense=[128, 0]), "model.dense: widths must be positive, got [128, 0]"),
        (
            lambda: ModelConfig(attention_reduction=128),
            "model.attention_reduction: 128 leaves 64 // 128 = 0 hidden units",
        ),
        (
            lambda: ModelConfig(dense=[], dense_out_dropout=0.2),
            "model.dense_out_dropout: there is no per-step Linear to follow",
        ),
        (lambda: ModelConfig(preset="casme22"), "model.preset: unknown preset 'casme22' (did you"),
        (
            lambda: ModelConfig(poool=2),
            "unknown config key 'model.poool'; did you mean 'model.pool'",
        ),
        (lambda: TrainConfig(lr=0.0), "train.lr: expected a learning rate > 0, got 0.0"),
        (lambda: TrainConfig(lr=math.nan), "train.lr: expected a finite number, got nan"),
        (lambda: TrainConfig(betas=[0.9]), "train.betas: expected two numbers"),
        (lambda: TrainConfig(class_weights=[0, 0, 0]), "train.class_weights: expected at least"),
        (lambda: AugmentConfig(flip=1), "train.augment.flip: expected true/false, got 1"),
        (lambda: FramesConfig(count=0), "data.frames.count: expected a value in [1, inf], got 0"),
        (lambda: ProtocolConfig(split="kfold"), "protocol.split: expected loso, megc2019 or"),
        (lambda: ProtocolConfig(selection="inner_val"), "inner_val needs protocol.val_subjects"),
        (lambda: DataConfig(labels="megc5"), "data.labels: unknown label scheme 'megc5'"),
        (
            lambda: DataConfig(sources={"casme2": {"rot": "/x"}}),
            "unknown config key 'data.sources.casme2.rot'; did you mean 'data.sources.casme2.root'",
        ),
        (lambda: SourceConfig(root=[1]), "data.sources.<part>.root: expected a string, got [1]"),
        (
            lambda: ExperimentConfig(train={"epochs": "ten"}),
            "train.epochs: expected an integer, got 'ten'",
        ),
        (
            lambda: ExperimentConfig(model={"num_classes": 2}),
            "train.class_weights: expected 2 weights (model.num_classes is 2), but the default",
        ),
    ],
)
def test_a_section_built_directly_is_validated_with_its_key_path(build, message):
    with pytest.raises(ConfigError) as err:
        build()
    assert message in str(err.value)
    assert isinstance(err.value, MerError)


def test_sections_are_immutable_so_they_stay_valid():
    cfg = ModelConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.pool = 0  # type: ignore[misc]
    assert cfg.pool == 3


def test_replace_validates_again_and_keeps_the_raw_mapping():
    model = ModelConfig()
    smaller = replace(model, pool=2, dense=[32])
    assert (smaller.pool, smaller.dense, model.pool) == (2, [32], 3)
    with pytest.raises(ConfigError, match=r"model\.pool: expected a value in \[1, inf\], got 0"):
        replace(model, pool=0)
    with pytest.raises(ConfigError, match="unknown config key 'model.pooll'"):
        replace(model, pooll=2)
    cfg = from_dict({"name": "r", "train": {"epochs": 3}})
    again = replace(cfg, name="s")
    assert again.name == "s" and again.train.epochs == 3 and again.raw == cfg.raw


def test_raw_is_what_the_user_wrote_and_not_compared_or_serialised():
    raw = {"name": "r", "model": {"preset": "smic"}}
    cfg = from_dict(raw)
    assert cfg.raw == raw and cfg.raw is not raw
    assert "raw" not in to_dict(cfg)
    resolved = from_dict(to_dict(cfg))
    assert resolved == cfg and resolved.raw != cfg.raw
    assert config_hash(resolved) == config_hash(cfg)
    assert "unknown config key 'raw'" in _error({"raw": {}})


# ------------------------------------------------------------------------------------ presets
def test_presets_are_plain_data_that_model_preset_expands():
    from mer.models.presets import PRESETS

    assert list(PRESETS) == list(MODEL_PRESETS) == [
        "casme2", "samm", "smic", "casme3", "deception", "casme_sq", "meview"
    ]  # fmt: skip
    assert all(isinstance(v, dict) for v in MODEL_PRESETS.values())
    for name, preset in PRESETS.items():
        raw = {"model": {"preset": name}}
        if preset.num_classes != 3:
            raw["train"] = {"class_weights": "balanced"}
        assert from_dict(raw).model == preset
        assert preset.preset == name
    assert PRESETS["casme2"] == ModelConfig()  # the defaults are the casme2 preset


def test_config_imports_nothing_above_it():
    """mer.config sits below the models and the sweep layer: loading a search config imports
    neither (its space is parsed by mer.sweep.space, run by what runs the search)."""
    code = (
        "import sys; from mer.config import load_config;"
        "load_config('sweeps/demo_search.yaml');"
        "print([m for m in sys.modules if m.startswith(('mer.models', 'mer.sweep', 'torch'))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ legacy (dataclass) pickles
def test_configs_pickled_by_the_dataclass_config_unpickle_equal_and_valid():
    """tests/fixtures/legacy_config_dataclass.pkl was written by the dataclass config (the state
    Tune keeps of an interrupted search); the .json beside it holds what each config was then."""
    configs = pickle.loads((FIXTURES / "legacy_config_dataclass.pkl").read_bytes())
    expected = json.loads((FIXTURES / "legacy_config_dataclass.json").read_text())
    assert sorted(configs) == sorted(expected)
    for name, cfg in configs.items():
        assert type(cfg) is ExperimentConfig and type(cfg.model) is ModelConfig, name
        assert config_hash(cfg) == expected[name]["hash"], name
        # sections added since (report, data.faces, data.invalid_rows, ...) are at their
        # defaults; the canonical form (what is hashed) is what the config was then
        assert to_dict(cfg)["report"] == to_dict(ReportConfig()), name
        assert to_dict(cfg, canonical=True) == hash_form(cfg) == expected[name]["dict"], name
        added = {k: v for k, v in to_dict(cfg)["data"].items() if k in DataConfig.ADDED_FIELDS}
        assert added == {
            "faces": to_dict(FacesConfig()),
            "invalid_rows": "error", "expressions": "micro", "label_list": None,
            "on_bad_clip": "error",
        }, name  # fmt: skip
        assert cfg.raw == expected[name]["raw"], name
        again = pickle.loads(pickle.dumps(cfg))  # and the new pickles round-trip
        assert again == cfg and again.raw == cfg.raw
    base = configs["demo_search"]
    assert base == load_config(REPO / "sweeps" / "demo_search.yaml")
    assert variant_config(base, "full") == configs["demo_search/full"]
    trial = with_overrides(
        variant_config(base, "full"), {"train.lr": 0.005, "model.recurrent": "lstm"}
    )
    assert trial == configs["demo_search/trial"]


def test_an_invalid_legacy_state_is_refused_with_the_key():
    legacy = {**to_dict(ModelConfig()), "pool": 0}
    cfg = ModelConfig.__new__(ModelConfig)
    with pytest.raises(ConfigError, match=r"model\.pool: expected a value in \[1, inf\], got 0"):
        cfg.__setstate__(legacy)
