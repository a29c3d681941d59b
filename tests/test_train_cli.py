"""`mer train`: one fold and all folds in-process, outputs, printed metrics, errors."""

from __future__ import annotations

import argparse
import importlib
import json

import pytest
import yaml

from mer.cli.train import add_parser
from mer.errors import ConfigError
from mer.metrics import megc_scores
from mer.predlog import read_predictions
from tests.test_train_support import tiny_data, use_tiny_net


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mer")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def tiny_sweep(tmp_path, monkeypatch):
    """A sweep YAML whose data is the tiny in-memory set (prepare_data patched) and TinyNet."""
    use_tiny_net(monkeypatch)
    data = tiny_data()
    calls = []

    def prepare(data_cfg, progress=True):
        calls.append(data_cfg)
        return data

    monkeypatch.setattr(importlib.import_module("mer.data.cache"), "prepare_data", prepare)
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "output": str(tmp_path / "results"),
                "data": {"dataset": "synthetic"},
                "protocol": {"val_subjects": 1},
                "train": {"epochs": 2, "batch_size": 4, "threads": 1},
                "ablations": {"full": {}, "fast": {"train.lr": 0.01}},
                "seeds": [7, 8],
            },
            sort_keys=False,
        )
    )
    return path, calls


def test_one_fold_writes_outputs_and_prints_metrics(tiny_sweep, tmp_path, capsys):
    path, _ = tiny_sweep
    assert _main(["train", str(path), "--fold", "s1", "--no-progress"]) == 0
    out = tmp_path / "results" / "tiny" / "debug" / "full" / "7" / "synthetic__s1"
    for name in (
        "predictions.csv",
        "predictions_megc.txt",
        "history.csv",
        "result.json",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    pred = read_predictions(out / "predictions.csv")
    assert set(pred["fold"]) == {"synthetic/s1"} and set(pred["variant"]) == {"full"}
    assert set(pred["seed"]) == {7}
    result = json.loads((out / "result.json").read_text())
    test = pred[pred["split"] == "test"]
    assert megc_scores(test["true"], test["pred"], 3) == result["test_scores"]
    printed = capsys.readouterr().out
    assert "fold synthetic/s1  seed 7" in printed
    # who was tested and who validated (protocol.val_subjects: 1, drawn from the training side)
    val_subject = pred.loc[pred["split"] == "val", "subject"].unique()
    assert len(val_subject) == 1 and val_subject[0] != "synthetic/s1"
    assert f"test ({len(test)} clips of synthetic/s1)" in printed
    assert f"clips of {val_subject[0]})" in printed
    s = result["test_scores"]
    assert f"uf1 {s['uf1']:.4f}  uar {s['uar']:.4f}  acc {s['acc']:.4f}" in printed
    assert "selected epoch 2 of 2 (fixed_epochs)" in printed and "ORACLE" not in printed
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2


def test_variant_seed_set_and_out(tiny_sweep, tmp_path, capsys):
    path, calls = tiny_sweep
    out = tmp_path / "here"
    argv = [
        "train",
        str(path),
        "--fold",
        "synthetic/s2",
        "--variant",
        "fast",
        "--seed",
        "8",
        "--set",
        "train.epochs=1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert _main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["lr"] == 0.01
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 8 and result["epochs_trained"] == 1 and result["variant"] == "fast"
    assert calls[0].dataset == "synthetic"


def test_all_folds_prints_pooled_report(tiny_sweep, tmp_path, capsys):
    path, _ = tiny_sweep
    assert _main(["train", str(path), "--all-folds", "--no-progress"]) == 0
    out = tmp_path / "results" / "tiny" / "debug" / "full" / "7"
    pred = read_predictions(out / "predictions.csv")
    assert sorted(set(pred["fold"])) == [f"synthetic/s{i}" for i in range(4)]
    assert all((out / f"synthetic__s{i}" / "predictions.csv").is_file() for i in range(4))
    test = pred[pred["split"] == "test"]
    scores = megc_scores(test["true"], test["pred"], 3)
    printed = capsys.readouterr().out
    assert f"pooled     uf1 {scores['uf1']:.4f}" in printed
    assert "pooled over folds: variant full  seed 7  (24 test clips)" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["composite"] == scores


def test_all_folds_of_a_fold_subset_name_the_megc_file_partial(tiny_sweep, tmp_path):
    """The pooled MEGC file of a `protocol.folds` subset says which share of the subjects it
    holds (predlog.megc_file_name); each fold folder's file is one fold by construction."""
    path, _ = tiny_sweep
    argv = ["train", str(path), "--all-folds", "--no-progress"]
    argv += ["--set", "protocol.folds=[synthetic/s0,synthetic/s2]"]
    assert _main(argv) == 0
    out = tmp_path / "results" / "tiny" / "debug" / "full" / "7"
    assert (out / "predictions_megc.partial-2-of-4.txt").is_file()
    assert not (out / "predictions_megc.txt").exists()
    assert (out / "synthetic__s0" / "predictions_megc.txt").is_file()


def test_unknown_fold_and_variant_are_config_errors(tiny_sweep):
    path, _ = tiny_sweep
    with pytest.raises(ConfigError, match="unknown fold 'sub9'"):
        _main(["train", str(path), "--fold", "sub9", "--no-progress"])
    with pytest.raises(ConfigError, match="unknown variant 'ful'"):
        _main(["train", str(path), "--fold", "s1", "--variant", "ful", "--no-progress"])


def test_search_config_with_a_bad_space_fails_before_data(tiny_sweep):
    path, calls = tiny_sweep
    sets = [
        "--set", "protocol.split=group_kfold:3",
        "--set", "search={trials: 1, space: {train.lr: {loguniform: [1.0e-2, 1.0e-3]}}}",
    ]  # fmt: skip
    with pytest.raises(ConfigError) as err:
        _main(["train", str(path), "--fold", "kfold0", "--no-progress", *sets])
    assert str(err.value).startswith(f"{path}: search.space.train.lr.loguniform: expected low")
    assert calls == []  # prepare_data never ran


def test_fold_or_all_folds_required(tiny_sweep, capsys):
    path, _ = tiny_sweep
    with pytest.raises(SystemExit) as exc:
        _main(["train", str(path)])
    assert exc.value.code == 2
    assert "one of the arguments --fold --all-folds is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _main(["train", str(path), "--fold", "s1", "--all-folds"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_search_config_folds_exclude_its_held_out_subjects(tiny_sweep, tmp_path):
    """`mer train` on a search config reproduces the search's folds: held-out subjects in none."""
    from mer.protocol import holdout_subjects
    from tests.test_train_support import tiny_data

    path, _ = tiny_sweep
    sets = [
        "--set", "protocol.split=group_kfold:3",
        "--set", "search={trials: 1, holdout_subjects: 1, seed: 0, "
        "space: {train.lr: {loguniform: [1.0e-3, 1.0e-2]}}}",
    ]  # fmt: skip
    assert _main(["train", str(path), "--all-folds", "--no-progress", *sets]) == 0
    held = holdout_subjects(tiny_data().samples, 1, 0)
    pred = read_predictions(
        tmp_path / "results" / "tiny" / "debug" / "full" / "7" / "predictions.csv"
    )
    assert len(held) == 1 and len(pred)
    assert held[0] not in set(pred["subject"])
    assert set(pred["fold"]) == {"kfold0", "kfold1", "kfold2"}
