"""Config validation, overrides, variants, YAML round trip and hash stability."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mer.config import (
    ExperimentConfig,
    apply_overrides,
    config_hash,
    dump_yaml,
    flatten,
    from_dict,
    load_config,
    variant_config,
    with_overrides,
)
from mer.errors import ConfigError

SWEEP = textwrap.dedent(
    """
    name: t
    data:
      dataset: casme2
      root: /data/CASME2_RAW_selected
      frames: {count: 30, select: motion_topk}
      regions: {landmarks: dlib, policy: au_oracle}
    model: {preset: casme2}
    train: {epochs: 200, batch_size: 8, lr: 1e-3, class_weights: [0.3, 0.35, 0.35]}
    ablations:
      full: {}
      single_branch: {model.branches: single}
      smic_model: {model.preset: smic}
      au_off: {data.regions.policy: none}
    seeds: [0, 1, 2]
    """
)


@pytest.fixture()
def sweep_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_load_resolves_preset_and_reads_exponent_without_dot(sweep_file):
    cfg = load_config(sweep_file)
    assert cfg.train.lr == pytest.approx(1e-3)  # PyYAML reads "1e-3" as a string
    assert cfg.model.merge_channels == 64 and cfg.model.attention == "ec_cbam"
    assert cfg.seeds == [0, 1, 2]
    assert cfg.variants == ["full", "single_branch", "smic_model", "au_off"]


def test_unknown_key_names_path_and_closest_key(sweep_file):
    with pytest.raises(ConfigError) as err:
        load_config(sweep_file, ["train.lrr=0.1"])
    msg = str(err.value)
    assert "unknown config key 'train.lrr'" in msg and "did you mean 'train.lr'" in msg
    assert str(sweep_file) in msg


def test_nested_unknown_key(sweep_file):
    with pytest.raises(
        ConfigError, match=r"data\.regions\.polcy'; did you mean 'data\.regions\.policy'"
    ):
        load_config(sweep_file, ["data.regions.polcy=none"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=ten", "train.epochs: expected an integer, got 'ten'"),
        ("train.lr=-1", r"train.lr: expected a value in [0.0, inf], got -1.0"),
        ("train.lr=0", "train.lr: expected a learning rate > 0, got 0.0"),
        ("data.labels=megc5", "data.labels: unknown label scheme 'megc5' (did you mean 'megc3'?"),
        ("data.regions.au_codes=x", "data.regions.au_codes: expected a list of integers, got 'x'"),
        (
            "data.frames={count: 8, select: onset_apex_offset, window: clip}",
            "data.frames.window: clip, but select onset_apex_offset always selects inside",
        ),
        ("model.dropout=1.5", "model.dropout: expected a value in [0.0, 0.99], got 1.5"),
        ("model.attention=ecbam", "did you mean 'cbam'"),
        ("train.augment.flip=maybe", "train.augment.flip: expected true/false, got 'maybe'"),
        ("protocol.split=kfold", "protocol.split: expected loso, megc2019 or group_kfold:K"),
        ("train.class_weights=[1, 2]", "expected 3 weights"),
        ("model.preset=casme22", "unknown preset 'casme22' (did you mean 'casme2'?)"),
        ("seeds=[]", "seeds: expected at least one seed"),
    ],
)
def test_wrong_type_or_range_names_key_and_expectation(sweep_file, override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(sweep_file, [override])
    assert expected in str(err.value)


def test_override_parsing_errors():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.lr"])


def test_bad_variant_is_reported_with_its_name(sweep_file):
    with pytest.raises(ConfigError, match=r"ablations\.broken: unknown config key 'model\.branch'"):
        load_config(sweep_file, ["ablations.broken.model.branch=single"])


def test_overrides_and_variants(sweep_file):
    cfg = load_config(
        sweep_file, ["train.lr=3e-4", "seeds=[7]", "ablations.extra.model.recurrent=lstm"]
    )
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.seeds == [7]
    assert variant_config(cfg, "single_branch").model.branches == "single"
    # A preset switch gives that preset's values, not the base preset's re-expanded ones.
    smic = variant_config(cfg, "smic_model").model
    assert (smic.merge_channels, smic.attention, smic.dropout) == (32, "ec_cbam_sum", 0.3)
    assert variant_config(cfg, "extra").model.recurrent == "lstm"
    assert variant_config(cfg, "au_off").data.regions.policy == "none"
    assert variant_config(cfg, "full").train.lr == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="unknown variant 'ful' \\(did you mean 'full'\\?\\)"):
        variant_config(cfg, "ful")


def test_explicit_model_key_beats_preset():
    cfg = from_dict({"model": {"preset": "smic", "dropout": 0.1}})
    assert cfg.model.dropout == 0.1 and cfg.model.merge_channels == 32


def test_yaml_round_trip(sweep_file, tmp_path):
    cfg = load_config(sweep_file)
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(cfg))
    again = load_config(path)
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)


def test_hash_same_meaning_same_hash_across_key_order_and_processes(sweep_file):
    a = from_dict({"train": {"lr": 0.001, "epochs": 5}, "seeds": [1]})
    b = from_dict({"seeds": [1], "train": {"epochs": 5, "lr": "1e-3"}})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(with_overrides(a, {"train.epochs": 6}))
    code = (
        "from mer.config import from_dict, config_hash;"
        "print(config_hash(from_dict({'seeds': [1], 'train': {'epochs': 5, 'lr': 1e-3}})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == config_hash(a)


def test_search_space_keys_must_be_config_paths():
    from mer.sweep.space import check_search_config  # the sweep layer checks search spaces

    base = {"protocol": {"val_subjects": 1}}
    raw = {**base, "search": {"space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}}
    ok = check_search_config(from_dict(raw))
    assert "train.lr" in ok.search.space
    with pytest.raises(ConfigError, match=r"search\.space\.train\.lrate: not a config key"):
        check_search_config(
            from_dict({**base, "search": {"space": {"train.lrate": {"uniform": [0, 1]}}}})
        )
    with pytest.raises(ConfigError, match="inner-validation"):
        from_dict({"search": {"space": {}}})


def test_inner_val_selection_needs_validation_subjects():
    with pytest.raises(ConfigError, match="val_subjects >= 1"):
        from_dict({"protocol": {"selection": "inner_val"}})


def test_defaults_and_flatten():
    cfg = ExperimentConfig()
    flat = flatten(cfg)
    assert flat["train.lr"] == 1e-3 and flat["model.preset"] == "casme2"
    assert flat["tracking.wandb.mode"] == "offline"


def test_yaml_reads_on_as_a_key_and_exponents_as_floats(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "protocol: {val_subjects: 1}\n"
        "search:\n  objective: {metric: uf1, on: inner_val}\n"
        "  space: {train.lr: {loguniform: [1e-4, 1e-2]}}\n"
        "train: {lr: 2e-3, augment: {flip: true}}\n"
    )
    cfg = load_config(path)
    assert cfg.search.objective.on == "inner_val"
    assert cfg.search.space["train.lr"]["loguniform"] == [1e-4, 1e-2]
    assert cfg.train.lr == 2e-3 and cfg.train.augment.flip is True


# --------------------------------------------------------------- values that used to fail late
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.betas=[2, 3]", "train.betas[0]: expected a value in [0, 1), got 2.0"),
        ("train.betas=[0.9, 1.0]", "train.betas[1]: expected a value in [0, 1), got 1.0"),
        ("train.betas=[-0.1, 0.9]", "train.betas[0]: expected a value in [0, 1), got -0.1"),
        ("train.betas=[0.9]", "train.betas: expected two numbers (Adam's beta1, beta2)"),
        ("train.betas=[0.9, 0.99, 0.5]", "train.betas: expected two numbers"),
        ("train.class_weights=[-1, 0, 0]", "train.class_weights[0]: expected a weight >= 0"),
        ("train.class_weights=[1, .nan, 1]", "train.class_weights[1]: expected a weight >= 0"),
        ("train.class_weights=[0, 0, 0]", "train.class_weights: expected at least one weight > 0"),
        ("seeds=[0, 1, 0]", "seeds: 0 listed more than once in [0, 1, 0]"),
    ],
)
def test_optimizer_loss_and_seed_values_fail_at_load(sweep_file, override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(sweep_file, [override])
    assert expected in str(err.value)


def test_valid_betas_weights_and_seeds_still_load(sweep_file):
    cfg = load_config(
        sweep_file, ["train.betas=[0, 0.5]", "train.class_weights=[0, 1, 0]", "seeds=[3, 1]"]
    )
    assert cfg.train.betas == [0.0, 0.5] and cfg.train.class_weights == [0.0, 1.0, 0.0]
    assert cfg.seeds == [3, 1]


def test_unknown_au_code_is_named_with_the_valid_ones(sweep_file):
    with pytest.raises(ConfigError) as err:
        load_config(sweep_file, ["data.regions.au_codes=[1, 99, 25]"])
    msg = str(err.value)
    assert "data.regions.au_codes: unknown AU code(s) 99, 25: no region uses them" in msg
    assert "valid codes: 1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 43" in msg
    with pytest.raises(ConfigError, match=r"ablations\.odd: data\.regions\.au_codes: unknown"):
        load_config(sweep_file, ["ablations.odd.data.regions.au_codes=[99]"])


def test_default_au_codes_are_exactly_the_codes_that_pick_a_region():
    from mer.datasets.facs import AU_CODE, AU_REGIONS

    assert sorted(AU_CODE) == sorted(set().union(*(c for _, c in AU_REGIONS)))


def test_class_weight_count_from_the_default_says_it_is_the_default():
    with pytest.raises(ConfigError) as err:
        from_dict({"model": {"preset": "deception"}})
    assert (
        "train.class_weights: expected 2 weights (model.num_classes is 2), but the default "
        "[0.3, 0.35, 0.35] has 3; set train.class_weights to 2 weights or balanced"
    ) in str(err.value)
    with pytest.raises(ConfigError, match=r"ablations\.dec: train\.class_weights: .* the default"):
        from_dict({"ablations": {"dec": {"model.preset": "deception"}}})
    # written by the user: the plain message
    with pytest.raises(ConfigError) as err:
        from_dict({"model": {"preset": "deception"}, "train": {"class_weights": [1, 1, 1]}})
    assert "expected 2 weights (model.num_classes), got 3" in str(err.value)
    assert "default" not in str(err.value)
    ok = from_dict({"model": {"preset": "deception"}, "train": {"class_weights": "balanced"}})
    assert ok.model.num_classes == 2


def test_variant_written_as_a_string_says_what_a_variant_is():
    with pytest.raises(ConfigError) as err:
        from_dict({"ablations": {"full": "lstm"}})
    assert str(err.value) == (
        "ablations.full: expected a mapping of dotted overrides (e.g. {model.recurrent: lstm}), "
        "got 'lstm'"
    )
    with pytest.raises(ConfigError, match="ablations: expected a mapping of variant name to"):
        from_dict({"ablations": ["full"]})
    assert from_dict({"ablations": {"full": None}}).ablations == {"full": {}}


# ------------------------------------------------------------------------------- the YAML file
def _write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_duplicate_top_level_key_names_key_and_both_lines(tmp_path):
    path = _write(tmp_path, "name: x\ndata: {dataset: synthetic}\nname: y\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: duplicate key 'name' (lines 1 and 3)")


def test_duplicate_variant_name_is_an_error(tmp_path):
    path = _write(
        tmp_path,
        """
        ablations:
          full: {}
          lstm: {model.recurrent: lstm}
          lstm: {model.recurrent: none}
        """,
    )
    with pytest.raises(ConfigError, match=r"duplicate key 'lstm' \(lines 4 and 5\)"):
        load_config(path)


def test_duplicate_key_in_a_flow_mapping_and_in_an_override(tmp_path):
    path = _write(tmp_path, "train: {lr: 1.0e-3, lr: 2.0e-3}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' \(lines 1 and 1\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"override 'train=\{lr: 1, lr: 2\}': duplicate key 'lr'"):
        apply_overrides({}, ["train={lr: 1, lr: 2}"])


def test_merge_keys_may_still_override_merged_values():
    from mer.config import read_yaml

    data = read_yaml("base: &b {lr: 1, epochs: 2}\ntrain:\n  <<: *b\n  lr: 3\n")
    assert data["train"] == {"lr": 3, "epochs": 2}


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n# and another\n", "---\n"])
def test_empty_file_is_an_error_not_a_run_on_defaults(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, ["data.dataset=synthetic"])
    assert f"{path}: the file is empty (or only comments); a sweep needs at least a `data`" in str(
        err.value
    )


def test_set_adding_a_near_miss_variant_warns(sweep_file, caplog):
    with caplog.at_level("WARNING", logger="mer.config"):
        cfg = load_config(sweep_file, ["ablations.fulll.model.recurrent=lstm"])
    assert "fulll" in cfg.variants  # adding a variant by --set still works
    assert f"--set added variant 'fulll' (not in {sweep_file}; did you mean 'full'?)" in caplog.text


def test_set_adding_a_distinct_or_existing_variant_does_not_warn(sweep_file, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="mer.config"):
        load_config(sweep_file, ["ablations.extra.model.recurrent=lstm"])
        load_config(sweep_file, ["ablations.full.model.recurrent=lstm"])
        # no ablations in the file: the default variant is `full`
        load_config(_write(tmp_path, "name: n\n"), ["ablations.full.model.recurrent=lstm"])
    assert "added variant" not in caplog.text
    with caplog.at_level("WARNING", logger="mer.config"):
        load_config(_write(tmp_path, "name: n\n"), ["ablations.ful.model.recurrent=lstm"])
    assert "--set added variant 'ful'" in caplog.text


def test_every_shipped_sweep_loads():
    from pathlib import Path

    sweeps = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))
    assert sweeps
    for path in sweeps:
        assert load_config(path).variants


def test_a_folder_or_binary_file_as_config_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; expected a sweep YAML file"):
        load_config(tmp_path)
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x")
    with pytest.raises(ConfigError, match=r"x.yaml: not a UTF-8 text file \(invalid start byte"):
        load_config(binary)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"dataset": "casme2", "sources": {"samm": {"root": "/x"}}},
            "data.sources: only read for dataset megc2019 (this is casme2)",
        ),
        (
            {"dataset": "megc2019", "sources": {"casme3": {"root": "/x"}}},
            "data.sources: unknown part(s) casme3; the MEGC2019 composite is made of casme2, samm",
        ),
        ({"dataset": "megc2019", "root": "/x"}, "data.root: not read for megc2019"),
        ({"dataset": "smic"}, "au_oracle chooses regions from AU annotations, which smic does not"),
        (
            {"dataset": "synthetic", "synthetic": {"layout": "deception"}},
            "which synthetic (layout deception) does not have; use all or fixed",
        ),
    ],
)
def test_keys_a_dataset_would_ignore_are_errors(data, message):
    with pytest.raises(ConfigError) as exc:
        from_dict({"data": data})
    assert message in str(exc.value)
    if data.get("dataset") == "smic":  # label-free policies are fine there
        from_dict({"data": {**data, "regions": {"policy": "all"}}})


def test_a_variant_cannot_change_search_settings():
    raw = {
        "protocol": {"split": "group_kfold:2", "val_subjects": 1},
        "search": {"trials": 2, "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}},
        "ablations": {"full": {}, "b": {"search.seed": 3}},
    }
    with pytest.raises(ConfigError, match="ablations.b: a variant cannot change search settings"):
        from_dict(raw)


@pytest.mark.parametrize("key", ["conv_a_channels", "conv_b_kernel", "merge_channels"])
def test_model_widths_and_kernels_are_checked_at_load(key):
    with pytest.raises(ConfigError, match=rf"model.{key}: expected a value in \[1, inf\], got 0"):
        from_dict({"model": {key: 0}})
