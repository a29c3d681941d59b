"""Prediction logs: CSV round trip, metrics recomputed from files, MEGC submission layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mer.errors import DataError
from mer.metrics import megc_scores, pooled_report
from mer.predlog import (
    megc_lines,
    prob_columns,
    read_history,
    read_megc,
    read_predictions,
    save_fold_result,
    write_megc,
    write_predictions,
)
from mer.train import run_fold
from tests.test_train_support import folds_of, tiny_cfg, tiny_data, use_tiny_net


@pytest.fixture(scope="module")
def results():
    mp = pytest.MonkeyPatch()
    use_tiny_net(mp)
    try:
        data = tiny_data()
        cfg = tiny_cfg(protocol={"val_subjects": 1}, train={"epochs": 2})
        return [run_fold(cfg, data, f, seed=0) for f in folds_of(data, cfg)]
    finally:
        mp.undo()


def test_csv_round_trip_is_exact(results, tmp_path):
    pred = pd.concat([r.predictions for r in results], ignore_index=True)
    pred["variant"] = "full"
    pred["seed"] = 0
    path = write_predictions(pred, tmp_path / "p.csv")
    back = read_predictions(path)
    pd.testing.assert_frame_equal(back, pred, check_dtype=False)
    assert back["true"].dtype == np.int64 and back["oracle"].dtype == bool
    for col in prob_columns(back):
        assert np.array_equal(back[col].to_numpy(), pred[col].to_numpy())  # bit-exact floats


def test_metrics_recomputed_from_files_match_the_printed_ones(results, tmp_path):
    for r in results:
        save_fold_result(r, tmp_path / r.fold.replace("/", "__"))
    for r in results:
        back = read_predictions(tmp_path / r.fold.replace("/", "__") / "predictions.csv")
        test = back[back["split"] == "test"]
        val = back[back["split"] == "val"]
        assert megc_scores(test["true"], test["pred"], 3) == r.test_scores
        assert megc_scores(val["true"], val["pred"], 3) == r.val_scores
        saved = json.loads((tmp_path / r.fold.replace("/", "__") / "result.json").read_text())
        assert saved["test_scores"] == r.test_scores and saved["fold"] == r.fold
        assert saved["selected_epoch"] == r.selected_epoch and saved["oracle"] is False
    pooled = pd.concat([r.predictions for r in results], ignore_index=True)
    files = pd.concat(
        [read_predictions(p) for p in sorted(tmp_path.glob("*/predictions.csv"))],
        ignore_index=True,
    )
    assert pooled_report(files, 3) == pooled_report(pooled, 3)


def test_history_file(results, tmp_path):
    paths = save_fold_result(results[0], tmp_path, config_yaml="name: tiny\n")
    hist = read_history(paths["history"])
    assert hist["epoch"].tolist() == [1, 2]
    assert hist["loss"].tolist() == [h["loss"] for h in results[0].history]
    assert (tmp_path / "config.yaml").read_text() == "name: tiny\n"


def test_megc_submission_layout(results, tmp_path):
    pred = pd.concat([r.predictions for r in results], ignore_index=True)
    lines = megc_lines(pred)
    test = pred[pred["split"] == "test"]
    assert lines[0] == "synthetic s0"
    first = test[test["fold"] == "synthetic/s0"].sort_values("sample_id")
    assert lines[1 : 1 + len(first)] == [
        f"{c} {t} {p}" for c, t, p in zip(first["clip"], first["true"], first["pred"])
    ]
    headers = [ln for ln in lines if len(ln.split()) == 2]
    assert headers == ["synthetic s0", "synthetic s1", "synthetic s2", "synthetic s3"]
    assert len(lines) == len(test) + 4
    back = read_megc(write_megc(pred, tmp_path / "megc.txt"))
    assert back["true"].tolist() == test.sort_values(["fold", "sample_id"])["true"].tolist()
    assert megc_scores(back["true"], back["pred"], 3) == megc_scores(test["true"], test["pred"], 3)


def test_megc_file_keeps_casme3_onset_and_refuses_whitespace():
    pred = pd.DataFrame(
        {
            "sample_id": ["casme3/spNO.1/a/123", "casme3/spNO.1/b c"],
            "dataset": "casme3",
            "subject": "casme3/spNO.1",
            "clip": ["a", "b c"],
            "fold": "casme3/spNO.1",
            "split": "test",
            "true": [0, 1],
            "pred": [0, 2],
        }
    )
    assert megc_lines(pred.iloc[:1]) == ["casme3 spNO.1", "a/123 0 0"]
    with pytest.raises(DataError, match="whitespace"):
        megc_lines(pred)


def test_read_predictions_errors_name_file_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("sample_id,true\nx,0\n")
    with pytest.raises(DataError, match="bad.csv: missing column"):
        read_predictions(path)
    good = "sample_id,dataset,subject,clip,fold,split,true,pred,oracle\n"
    path.write_text(good + "a/b/NA,a,a/b,NA,a/b,test,0,x,False\n")
    with pytest.raises(DataError, match="row 2, column 'pred'"):
        read_predictions(path)
    path.write_text(good + "a/b/NA,a,a/b,NA,a/b,test,0,1,maybe\n")
    with pytest.raises(DataError, match="column 'oracle'"):
        read_predictions(path)
    path.write_text(good + "a/b/NA,a,a/b,NA,a/b,test,0,1,False\n")
    assert read_predictions(path)["clip"].tolist() == ["NA"]
    with pytest.raises(DataError, match="not found"):
        read_predictions(tmp_path / "missing.csv")


def test_megc_file_name_carries_the_oracle_tag():
    import pandas as pd

    from mer.predlog import megc_file_name

    assert megc_file_name(pd.DataFrame({"oracle": [False, False]})) == "predictions_megc.txt"
    assert megc_file_name(pd.DataFrame({"oracle": [False, True]})) == "predictions_megc.oracle.txt"
    assert megc_file_name(pd.DataFrame({"pred": [0]})) == "predictions_megc.txt"


def test_class_names_next_to_the_class_indices(tmp_path):
    """A sweep's prediction logs name each class (true_name, pred_name right after pred), so
    they read without the label scheme's class order; a class outside the names is an error."""
    from mer.predlog import add_class_names

    pred = pd.DataFrame(
        {"sample_id": ["a", "b", "NA"], "true": [0, 2, 1], "pred": [2, 2, 0], "prob_0": [0.1] * 3}
    )
    named = add_class_names(pred, ["negative", "positive", "surprise"])
    assert list(named.columns) == ["sample_id", "true", "pred", "true_name", "pred_name", "prob_0"]
    assert named["true_name"].tolist() == ["negative", "surprise", "positive"]
    assert named["pred_name"].tolist() == ["surprise", "surprise", "negative"]
    assert list(add_class_names(named, ["n", "p", "s"])["true_name"]) == ["n", "s", "p"]  # again
    with pytest.raises(DataError, match="pred class 2 outside the 2 class names"):
        add_class_names(pred.assign(true=0), ["negative", "positive"])


def test_a_filed_trial_names_its_classes(tmp_path):
    from mer.experiment.plan import TrialSpec
    from mer.experiment.store import ResultsStore

    spec = TrialSpec("full", "casme2/sub01", 0, 0)
    payload = {
        "class_names": ["negative", "positive", "surprise"],
        "predictions": {
            "sample_id": ["casme2/sub01/EP01"], "dataset": ["casme2"], "subject": ["casme2/sub01"],
            "clip": ["EP01"], "fold": ["casme2/sub01"], "split": ["test"], "true": [1],
            "pred": [2], "prob_0": [0.1], "prob_1": [0.2], "prob_2": [0.7], "oracle": [False],
        },
    }  # fmt: skip
    rec = ResultsStore(tmp_path).write_trial(spec, payload)
    back = read_predictions(rec.path / "predictions.csv")
    assert back[["true", "pred", "true_name", "pred_name"]].values.tolist() == [
        [1, 2, "positive", "surprise"]
    ]
    assert list(back.columns[6:10]) == ["true", "pred", "true_name", "pred_name"]
