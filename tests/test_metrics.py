from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from mer.errors import DataError
from mer.metrics import (
    PER_FOLD_NOTE,
    MetricInputError,
    always_class_baseline,
    confusion_matrix,
    megc_scores,
    pooled_report,
    pooled_scores,
)


def _sk(t, p, k):
    labels = list(range(k))
    return {
        "uf1": f1_score(t, p, average="macro", labels=labels, zero_division=0),
        "uar": recall_score(t, p, average="macro", labels=labels, zero_division=0),
        "acc": accuracy_score(t, p),
    }


@pytest.mark.parametrize("k", [2, 3, 5])
def test_equals_sklearn_random(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        n = int(rng.integers(k, 60))
        t = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present
        p = rng.integers(0, k, n)
        ours, ref = megc_scores(t, p, k), _sk(t, p, k)
        for key in ("uf1", "uar", "acc"):
            assert ours[key] == pytest.approx(ref[key], abs=1e-12)
        cm = confusion_matrix(t, p, k)
        np.testing.assert_array_equal(cm, sk_confusion(t, p, labels=range(k)))


def test_absent_class_explicit_values():
    # class 2 never true; predicted once -> F1_2 = 0, recall_2 = 0 (N_2 = 0), still in the mean
    t = [0, 0, 1, 1]
    p = [0, 1, 1, 2]
    s = megc_scores(t, p, 3)
    f1_0 = 2 * 1 / (2 * 1 + 0 + 1)  # TP=1, FP=0, FN=1
    f1_1 = 2 * 1 / (2 * 1 + 1 + 1)  # TP=1, FP=1, FN=1
    assert s["uf1"] == pytest.approx((f1_0 + f1_1 + 0.0) / 3)
    assert s["uar"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert s["acc"] == pytest.approx(0.5)
    assert s == pytest.approx(_sk(t, p, 3))
    # class 2 neither true nor predicted: 2TP+FP+FN == 0 -> F1 = 0 (not dropped from the mean)
    s2 = megc_scores([0, 1], [0, 1], 3)
    assert s2 == {"uf1": pytest.approx(2 / 3), "uar": pytest.approx(2 / 3), "acc": 1.0}
    assert s2 == pytest.approx(_sk([0, 1], [0, 1], 3))


def test_class_set_is_fixed_not_observed():
    # only class 0 and 1 observed: with K=3 the score differs from macro over present labels
    t, p = [0, 1, 1], [0, 1, 0]
    assert megc_scores(t, p, 3)["uf1"] == pytest.approx(megc_scores(t, p, 2)["uf1"] * 2 / 3)


def test_always_negative_megc2019_counts():
    y = np.repeat([0, 1, 2], [250, 109, 83])
    s = always_class_baseline(y, 3, cls=0)
    assert s["acc"] == pytest.approx(250 / 442)
    assert round(s["acc"], 3) == 0.566
    assert s["uar"] == pytest.approx(1 / 3)
    assert s["uf1"] == pytest.approx((2 * 250 / (2 * 250 + 192)) / 3)
    assert s == pytest.approx(_sk(y, np.zeros_like(y), 3))
    assert always_class_baseline(y, 3, cls=2)["acc"] == pytest.approx(83 / 442)


def test_input_validation():
    with pytest.raises(ValueError, match=r"label 3 at position 1 is outside \[0, 3\)"):
        megc_scores([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match=r"y_pred: label -1"):
        megc_scores([0, 1], [0, -1], 3)
    with pytest.raises(ValueError, match=r"differ in length \(3 vs 2\)"):
        megc_scores([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match="empty"):
        megc_scores([], [], 3)
    with pytest.raises(ValueError, match=r"label 1.5 at position 0"):
        megc_scores([1.5], [1], 3)
    with pytest.raises(ValueError, match=r"label nan"):
        megc_scores([0.0, float("nan")], [0, 1], 3)
    with pytest.raises(ValueError, match="cls: label 3"):
        always_class_baseline([0, 1], 3, cls=3)
    # integral floats (a CSV column read as float) are accepted
    assert megc_scores([0.0, 1.0], [0, 1], 2)["acc"] == 1.0
    # the error is a DataError too, so the CLI prints it without a traceback
    assert issubclass(MetricInputError, DataError)


def _pred_table() -> pd.DataFrame:
    rows = [
        # sample_id, dataset, subject(=fold), split, true, pred
        ("a/s1/c1", "a", "a/s1", "test", 0, 0),
        ("a/s1/c2", "a", "a/s1", "test", 0, 0),
        ("a/s1/c3", "a", "a/s1", "test", 0, 1),
        ("a/s2/c1", "a", "a/s2", "test", 1, 1),
        ("a/s2/c2", "a", "a/s2", "test", 2, 2),
        ("b/s1/c1", "b", "b/s1", "test", 2, 0),
        ("b/s1/c2", "b", "b/s1", "test", 1, 1),
        ("b/s2/c1", "b", "b/s2", "test", 0, 0),
        ("b/s2/c2", "b", "b/s2", "test", 2, 2),
        ("b/s2/c3", "b", "b/s2", "test", 1, 2),
        ("b/s3/c1", "b", "a/s1", "val", 2, 0),  # val rows are ignored by default
    ]
    df = pd.DataFrame(rows, columns=["sample_id", "dataset", "subject", "split", "true", "pred"])
    df["fold"] = df["subject"]
    df["clip"] = df["sample_id"].str.rsplit("/", n=1).str[-1]
    df["oracle"] = False
    return df


def test_pooled_report_composite_and_parts():
    df = _pred_table()
    test = df[df.split == "test"]
    rep = pooled_report(df, 3, class_names=["negative", "positive", "surprise"])
    assert rep["n"] == 10
    assert rep["composite"] == pytest.approx(megc_scores(test.true, test.pred, 3))
    assert rep["composite"] == pytest.approx(_sk(test.true, test.pred, 3))
    assert set(rep["per_dataset"]) == {"a", "b"}
    for ds in ("a", "b"):
        sub = test[test.dataset == ds]
        assert rep["per_dataset"][ds] == megc_scores(sub.true, sub.pred, 3)
        assert rep["per_dataset_n"][ds] == len(sub)
    assert rep["confusion"] == confusion_matrix(test.true, test.pred, 3).tolist()
    assert [c["class"] for c in rep["per_class"]] == ["negative", "positive", "surprise"]
    assert [c["support"] for c in rep["per_class"]] == [4, 3, 3]
    assert rep["oracle"] is False
    # split=None scores every row, val included
    assert pooled_report(df, 3, split=None)["n"] == 11


def test_pooled_scores_is_the_flat_row_of_the_pooled_report():
    df = _pred_table()
    test = df[df.split == "test"]
    row = pooled_scores(df, 3)
    assert set(row) == {
        "uf1", "uar", "acc", "n_test", "a/uf1", "a/uar", "a/acc", "b/uf1", "b/uar", "b/acc",
        "confusion", "oracle",
    }  # fmt: skip
    assert {m: row[m] for m in ("uf1", "uar", "acc")} == megc_scores(test.true, test.pred, 3)
    b = test[test.dataset == "b"]
    assert row["b/uf1"] == megc_scores(b.true, b.pred, 3)["uf1"]
    assert row["n_test"] == 10 and row["oracle"] is False
    assert json.loads(row["confusion"]) == confusion_matrix(test.true, test.pred, 3).tolist()
    # without a dataset column (or with one dataset) there are no parts; no oracle column: False
    plain = pooled_scores(df.drop(columns=["dataset", "oracle"]), 3)
    assert "a/uf1" not in plain and plain["oracle"] is False


def test_per_fold_average_differs_from_pooled():
    df = _pred_table()
    rep = pooled_report(df, 3)
    pf = rep["per_fold_nonstandard"]
    assert pf["note"] == PER_FOLD_NOTE
    assert pf["folds"] == 4
    test = df[df.split == "test"]
    per = [megc_scores(g.true, g.pred, 3) for _, g in test.groupby("fold")]
    assert pf["mean_uf1"] == pytest.approx(np.mean([s["uf1"] for s in per]))
    assert pf["mean_acc"] == pytest.approx(np.mean([s["acc"] for s in per]))
    # explicit numbers: pooled acc 7/10; per-fold accs 2/3, 1, 1/2, 2/3
    assert rep["composite"]["acc"] == pytest.approx(0.7)
    assert pf["mean_acc"] == pytest.approx((2 / 3 + 1 + 1 / 2 + 2 / 3) / 4)
    assert pf["mean_uf1"] != pytest.approx(rep["composite"]["uf1"], abs=0.01)


def test_pooled_report_single_dataset_has_no_parts():
    df = _pred_table()
    df = df[df.dataset == "a"]
    rep = pooled_report(df, 3)
    assert "per_dataset" not in rep
    assert rep["n"] == 5


def test_pooled_report_errors_and_oracle_flag():
    df = _pred_table()
    with pytest.raises(DataError, match="missing column"):
        pooled_report(df.drop(columns=["pred"]), 3)
    with pytest.raises(DataError, match="split"):
        pooled_report(df.drop(columns=["split"]), 3)
    bad = df.copy()
    bad.loc[0, "true"] = 7
    with pytest.raises(ValueError, match="column 'true': label 7"):
        pooled_report(bad, 3)
    with pytest.raises(DataError, match="appears more than once"):
        pooled_report(pd.concat([df, df]), 3)
    # a clip may be validation in several folds: val rows are unique per (fold, sample_id)
    val_twice = pd.concat([df, df[df.split == "val"].assign(fold="b/s1")])
    assert pooled_report(val_twice, 3, split="val")["n"] == 2
    with pytest.raises(DataError, match="appears more than once"):
        pooled_report(pd.concat([df, df[df.split == "val"]]), 3, split="val")
    with pytest.raises(DataError, match="no rows with split == 'test'"):
        pooled_report(df[df.split == "val"], 3)
    with pytest.raises(DataError, match="class_names"):
        pooled_report(df, 3, class_names=["a", "b"])
    csv_like = df.assign(oracle=["False"] * (len(df) - 1) + ["True"])
    assert pooled_report(csv_like, 3)["oracle"] is False  # the oracle row is a val row
    assert pooled_report(csv_like, 3, split=None)["oracle"] is True
