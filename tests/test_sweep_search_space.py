"""search.space syntax: parsing, validation against the config, conditional sampling."""

from __future__ import annotations

import optuna
import pytest

from mer.config import from_dict, variant_config
from mer.errors import ConfigError
from mer.sweep.space import check_search_config, load_search_config, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cfg(space=None, ablations=None):
    raw = {
        "name": "space-test",
        "data": {"dataset": "synthetic"},
        "protocol": {"split": "group_kfold:3", "val_subjects": 1},
        "search": {"trials": 3, "space": space or {"train.lr": {"loguniform": [1e-4, 1e-2]}}},
    }
    if ablations is not None:
        raw["ablations"] = ablations
    return check_search_config(from_dict(raw))  # as run_sweep.py loads a search


BASE = _cfg()

COND_SPACE = {
    "model.recurrent_units": {"int": [16, 64], "step": 16, "when": {"model.recurrent": ["gru"]}},
    "model.recurrent": {"choice": ["none", "gru", "lstm"]},
    "model.dropout": {"uniform": [0.1, 0.5], "step": 0.1},
    "train.lr": {"loguniform": [1.0e-4, "3e-3"]},
    "model.dense": {"choice": [[64], [128, 64]]},
}


def test_parse_orders_conditions_first_and_keeps_details():
    space = parse_space(COND_SPACE, BASE)
    keys = space.keys
    assert keys.index("model.recurrent") < keys.index("model.recurrent_units")
    units = space.get("model.recurrent_units")
    assert (units.kind, units.low, units.high, units.step) == ("int", 16, 64, 16)
    assert units.when == (("model.recurrent", ("gru",)),)
    assert space.get("train.lr").high == pytest.approx(3e-3)  # "3e-3" string read as a number
    assert space.get("model.dense").encoded and not space.get("model.recurrent").encoded
    assert space.conditional


def test_sample_respects_conditions_and_decodes_list_choices():
    space = parse_space(COND_SPACE, BASE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_units = {True: 0, False: 0}
    for _ in range(40):
        trial = study.ask()
        values = space.sample(trial, BASE)
        active = values["model.recurrent"] == "gru"
        assert ("model.recurrent_units" in values) == active
        assert ("model.recurrent_units" in trial.params) == active
        seen_units[active] += 1
        if active:
            assert values["model.recurrent_units"] in (16, 32, 48, 64)
        assert values["model.dense"] in ([64], [128, 64])
        assert isinstance(trial.params["model.dense"], str)  # Optuna sees JSON text
        assert space.decode_params(trial.params) == values
        assert round(values["model.dropout"], 6) in (0.1, 0.2, 0.3, 0.4, 0.5)
        study.tell(trial, 0.0)
    assert seen_units[True] > 0 and seen_units[False] > 0


def test_condition_on_fixed_variant_key_and_variant_drops_its_keys():
    cfg = _cfg(
        {
            "model.recurrent": {"choice": ["gru", "lstm"]},
            "model.recurrent_units": {"int": [16, 64], "when": {"model.recurrent": "gru"}},
            "model.mha_heads": {"int": [2, 8], "when": {"model.pooling": ["mha"]}},
        },
        ablations={"full": {}, "no_rnn": {"model.recurrent": "none"}},
    )
    space = parse_space(cfg.search.space, cfg)
    no_rnn = space.for_variant(cfg.ablations["no_rnn"])
    assert no_rnn.dropped == ("model.recurrent",)
    assert no_rnn.keys == ["model.recurrent_units", "model.mha_heads"]
    vcfg = variant_config(cfg, "no_rnn")
    study = optuna.create_study()
    trial = study.ask()
    # recurrent is fixed to none by the variant, pooling is msmh in the preset: nothing active
    assert no_rnn.sample(trial, vcfg) == {}
    assert space.for_variant({}) is space


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.lr": [1e-4, 1e-2]}, "search.space.train.lr: expected a mapping"),
        ({"train.lr": {"gauss": [0, 1]}}, "search.space.train.lr: unknown field(s) gauss"),
        ({"train.lr": {"uniform": [0.1, 0.2], "loguniform": [0.1, 0.2]}}, "exactly one of"),
        ({"train.lr": {"uniform": [0.3, 0.2]}}, "train.lr.uniform: expected low < high"),
        ({"train.lr": {"uniform": [0.1]}}, "train.lr.uniform: expected two bounds"),
        ({"train.lr": {"loguniform": [0, 0.1]}}, "train.lr.loguniform: bounds must be > 0"),
        ({"train.lr": {"uniform": ["a", 1]}}, "train.lr.uniform: expected a number, got 'a'"),
        ({"train.epochs": {"int": [1.5, 4]}}, "train.epochs.int: int bounds must be integers"),
        ({"train.epochs": {"uniform": [10, 20]}}, "train.epochs is an integer setting"),
        ({"train.epochs": {"int": [10, 20], "log": True, "step": 2}}, "either log or step"),
        ({"train.lr": {"loguniform": [1e-4, 1e-2], "step": 1e-4}}, "only uniform and int"),
        ({"train.lr": {"uniform": [0.1, 0.2], "log": True}}, "only int takes log"),
        ({"model.dropout": {"uniform": [0.1, 0.5], "step": 0.9}}, "0 < step <= high - low"),
        ({"model.recurrent": {"choice": []}}, "choice expects a non-empty list"),
        ({"model.recurrent": {"choice": ["gru", "gru"]}}, "choice lists 'gru' twice"),
        ({"model.recurrent": {"choice": ["gru", "lsmt"]}}, "model.recurrent: value 'lsmt'"),
        ({"model.dropout": {"uniform": [0.1, 1.5]}}, "model.dropout: value 1.5 is not valid"),
        ({"model.nope": {"uniform": [0.1, 0.5]}}, "search.space.model.nope: not a config key"),
        ({"protocol.val_subjects": {"int": [1, 3]}}, "protocol cannot be searched"),
        ({"model.num_classes": {"int": [2, 3]}}, "model.num_classes cannot be searched"),
        (
            {"model.recurrent_units": {"int": [8, 64], "when": {"model.recurrent": ["gur"]}}},
            "model.recurrent_units.when.model.recurrent: 'gur' is not one of model.recurrent's "
            "possible values",
        ),
        (
            {
                "model.recurrent": {"choice": ["gru", "lstm"]},
                "model.recurrent_units": {"int": [8, 64], "when": {"model.recurrent": ["gur"]}},
            },
            "'gur' is not one of model.recurrent's choices ['gru', 'lstm']",
        ),
        (
            {
                "model.dropout": {"uniform": [0.1, 0.5]},
                "model.recurrent_units": {"int": [8, 64], "when": {"model.dropout": [0.1]}},
            },
            "a condition must read a choice parameter or a fixed config key",
        ),
        (
            {"model.recurrent_units": {"int": [8, 64], "when": {"model.gru": ["x"]}}},
            "when.model.gru: unknown config key 'model.gru'",
        ),
        (
            {
                "model.recurrent": {"choice": ["gru"], "when": {"model.pooling": ["mean"]}},
                "model.pooling": {"choice": ["mean", "msmh"], "when": {"model.recurrent": ["gru"]}},
            },
            "conditions form a cycle",
        ),
        ({"model.dropout": {"uniform": [0.1, 0.5], "when": []}}, "when: expected a mapping"),
    ],
)
def test_space_errors_name_the_key(space, message):
    with pytest.raises(ConfigError) as err:
        parse_space(space, BASE)
    assert message in str(err.value)


def test_search_config_rejects_unknown_space_key_and_bad_pruner_p():
    with pytest.raises(ConfigError, match="search.space.train.lrr: not a config key"):
        _cfg({"train.lrr": {"uniform": [0.1, 0.2]}})
    raw = {
        "data": {"dataset": "synthetic"},
        "protocol": {"val_subjects": 1},
        "search": {"pruner_p": 1.5, "space": {"train.lr": {"uniform": [0.1, 0.2]}}},
    }
    with pytest.raises(ConfigError, match=r"search.pruner_p: expected a value in \[0.0, 1.0\]"):
        from_dict(raw)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "float"}, "search.space.train.lr: unknown field(s) type"),
        ({"loguniform": [1e-2, 1e-4]}, "search.space.train.lr.loguniform: expected low < high"),
        ({"uniform": [0.1, 2.0e3], "when": {"model.recurrent": ["gur"]}}, "'gur' is not one of"),
    ],
)
def test_search_config_parses_the_whole_space_at_load(spec, message):
    with pytest.raises(ConfigError) as err:
        _cfg({"train.lr": spec})
    assert message in str(err.value)


def test_bad_space_from_set_fails_in_load_search_config(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(
        "name: s\ndata: {dataset: synthetic}\nprotocol: {split: group_kfold:3, val_subjects: 1}\n"
        "search: {space: {train.lr: {loguniform: [1.0e-4, 1.0e-2]}}}\n"
    )
    assert load_search_config(path).search.space["train.lr"] == {"loguniform": [1e-4, 1e-2]}
    with pytest.raises(ConfigError) as err:
        load_search_config(path, ["search.space.train.lr={loguniform: [1.0e-2, 1.0e-4]}"])
    assert str(err.value).startswith(f"{path}: search.space.train.lr.loguniform: expected low")


def test_space_is_checked_against_each_variant():
    space = {"train.class_weights": {"choice": ["balanced", [1, 1, 1]]}}
    raw = {
        "data": {"dataset": "synthetic"},
        "protocol": {"split": "group_kfold:3", "val_subjects": 1},
        "train": {"class_weights": "balanced"},
        "search": {"space": space},
    }
    assert check_search_config(from_dict(raw)).search.space == space  # valid for the base
    raw["ablations"] = {"full": {}, "two": {"model.num_classes": 2}}
    with pytest.raises(ConfigError) as err:
        check_search_config(from_dict(raw))
    assert str(err.value).startswith(
        "search.space.train.class_weights: value [1, 1, 1] is not valid here (ablations.two: "
        "train.class_weights: expected 2 weights"
    )
    # a variant that fixes the key does not search it, so its value is not checked
    raw["ablations"]["two"]["train.class_weights"] = "balanced"
    assert check_search_config(from_dict(raw)).variants == ["full", "two"]


def test_a_rule_across_two_searched_keys_is_left_to_the_draw():
    """merge_channels 4 breaks the base's attention_reduction 8, but with reduction 2 (also
    searched) it is valid: the space loads and the searcher fails the bad draws when asked. With
    reduction not searched, 4 can never work: refused at load."""
    both = {
        "model.merge_channels": {"choice": [4, 64]},
        "model.attention_reduction": {"choice": [8, 2]},
    }
    assert _cfg(both).search.space == both
    with pytest.raises(ConfigError) as err:
        _cfg({"model.merge_channels": {"choice": [4, 64]}})
    assert str(err.value).startswith(
        "search.space.model.merge_channels: value 4 is not valid here (model.attention_reduction: "
        "8 leaves 4 // 8 = 0 hidden units"
    )
