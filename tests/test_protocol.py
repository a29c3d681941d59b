from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mer.config import ProtocolConfig
from mer.errors import ConfigError, DataError
from mer.protocol import (
    Fold,
    choose_val_subjects,
    fold_by_name,
    fold_table,
    holdout_subjects,
    make_folds,
    subject_counts,
)
from tests.support.real_data import MISSING, REAL

MEGC_GT = REAL / "combined_3class_gt.csv"


def _table(spec: dict[str, list[int]]) -> pd.DataFrame:
    """Sample table from {subject: [label per clip]} with mer.datasets.annotations columns."""
    rows = []
    for subject, labels in spec.items():
        ds = subject.split("/")[0] if "/" in subject else "casme2"
        prefix = subject if "/" in subject else f"{ds}/{subject}"
        for i, lab in enumerate(labels):
            rows.append(
                {
                    "sample_id": f"{prefix}/c{i:02d}",
                    "dataset": ds,
                    "subject": subject,
                    "clip": f"c{i:02d}",
                    "emotion": ["negative", "positive", "surprise"][lab],
                    "label": lab,
                }
            )
    return pd.DataFrame(rows).sort_values("sample_id").reset_index(drop=True)


def _random_table(n_subjects: int, seed: int = 0, prefix: str = "casme2/sub") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spec = {
        f"{prefix}{i:02d}": rng.integers(0, 3, int(rng.integers(1, 8))).tolist()
        for i in range(1, n_subjects + 1)
    }
    return _table(spec)


def _cfg(split: str = "loso", val: int = 0, folds: list[str] | None = None) -> ProtocolConfig:
    return ProtocolConfig(split=split, val_subjects=val, folds=folds or [])


def _check_disjoint(samples: pd.DataFrame, fold: Fold) -> None:
    subj = samples["subject"].to_numpy()
    test_s, train_s, val_s = set(subj[fold.test]), set(subj[fold.train]), set(subj[fold.val])
    assert test_s == set(fold.test_subjects)
    assert not test_s & train_s and not test_s & val_s and not train_s & val_s
    assert val_s == set(fold.val_subjects)
    for arr in (fold.train, fold.val, fold.test):
        assert arr.dtype == np.int64
        assert np.all(np.diff(arr) > 0)
        assert not arr.flags.writeable
    # every row lands in exactly one of train / val / test
    assert fold.train.size + fold.val.size + fold.test.size == len(samples)


def test_loso_every_sample_tested_once_and_test_subject_isolated():
    samples = _random_table(9)
    folds = make_folds(samples, _cfg("loso", val=2), seed=0)
    assert [f.name for f in folds] == sorted(samples["subject"].unique())
    assert [f.index for f in folds] == list(range(9))
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(samples)))
    for f in folds:
        assert f.test_subjects == (f.name,)
        assert len(f.val_subjects) == 2
        _check_disjoint(samples, f)


def test_fold_order_and_content_stable():
    samples = _random_table(7, seed=3)
    shuffled = samples.sample(frac=1, random_state=1).reset_index(drop=True)
    a = make_folds(samples, _cfg("loso", val=1), seed=5)
    b = make_folds(shuffled, _cfg("loso", val=1), seed=5)
    assert [f.name for f in a] == [f.name for f in b] == sorted(samples["subject"].unique())
    ids_a, ids_b = samples["sample_id"].to_numpy(), shuffled["sample_id"].to_numpy()
    for fa, fb in zip(a, b, strict=True):
        assert fa.val_subjects == fb.val_subjects
        for part in ("train", "val", "test"):
            assert sorted(ids_a[getattr(fa, part)]) == sorted(ids_b[getattr(fb, part)])


def test_val_subjects_deterministic_per_seed_and_vary_across_seeds():
    samples = _table({f"casme2/sub{i:02d}": [0, 1, 2] for i in range(1, 21)})
    cfg = _cfg("loso", val=2)
    first = {f.name: f.val_subjects for f in make_folds(samples, cfg, seed=0)}
    again = {f.name: f.val_subjects for f in make_folds(samples, cfg, seed=0)}
    assert first == again
    per_seed = [tuple(f.val_subjects for f in make_folds(samples, cfg, seed=s)) for s in range(4)]
    assert len(set(per_seed)) == 4
    # different folds of one seed draw different val sets too (fixed by (seed, fold))
    assert len(set(first.values())) > 5


def test_val_choice_is_class_aware():
    # every subject holds only class 0 except sub01 (class 2) and sub02 (classes 0, 1): the one
    # 2-subject val set covering all classes is {sub01, sub02}, whatever the seed.
    spec = {f"casme2/sub{i:02d}": [0, 0] for i in range(3, 15)}
    spec["casme2/sub01"] = [2]
    spec["casme2/sub02"] = [1, 0]
    samples = _table(spec)
    for seed in range(5):
        folds = make_folds(samples, _cfg("loso", val=2), seed=seed)
        for f in folds:
            if f.name in ("casme2/sub01", "casme2/sub02"):
                continue
            labels = set(samples["label"].to_numpy()[f.val].tolist())
            assert labels == {0, 1, 2}, (seed, f.name, f.val_subjects)
            assert set(f.val_subjects) == {"casme2/sub01", "casme2/sub02"}


def test_choose_val_subjects_greedy_then_random():
    classes = {"a": {0}, "b": {0, 1}, "c": {2}, "d": {0}}
    picks = {
        tuple(choose_val_subjects(["a", "b", "c", "d"], 2, classes, np.random.default_rng(s)))
        for s in range(10)
    }
    assert picks == {("b", "c")}
    picks3 = {
        tuple(choose_val_subjects(["a", "b", "c", "d"], 3, classes, np.random.default_rng(s)))
        for s in range(20)
    }
    assert picks3 == {("a", "b", "c"), ("b", "c", "d")}


def test_val_subjects_too_many_is_config_error():
    samples = _random_table(4)
    with pytest.raises(ConfigError, match=r"val_subjects: 3 .*3 training subjects.*at most 2"):
        make_folds(samples, _cfg("loso", val=3), seed=0)
    assert len(make_folds(samples, _cfg("loso", val=2), seed=0)) == 4


def test_group_kfold_covers_subjects_once_balanced_and_seeded():
    samples = _random_table(17, seed=2)
    folds = make_folds(samples, _cfg("group_kfold:4", val=1), seed=0)
    assert [f.name for f in folds] == ["kfold0", "kfold1", "kfold2", "kfold3"]
    all_test = [s for f in folds for s in f.test_subjects]
    assert sorted(all_test) == sorted(samples["subject"].unique())
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(samples)))
    sizes = [f.test.size for f in folds]
    assert max(sizes) - min(sizes) <= samples.groupby("subject").size().max()
    for f in folds:
        _check_disjoint(samples, f)
    same = make_folds(samples, _cfg("group_kfold:4", val=1), seed=0)
    assert [f.test_subjects for f in same] == [f.test_subjects for f in folds]
    others = {
        tuple(f.test_subjects for f in make_folds(samples, _cfg("group_kfold:4"), seed=s))
        for s in range(5)
    }
    assert len(others) > 1
    with pytest.raises(ConfigError, match="needs at least 18 subjects"):
        make_folds(samples, _cfg("group_kfold:18"), seed=0)
    with pytest.raises(ConfigError, match="K >= 2"):
        make_folds(samples, _cfg("group_kfold:1"), seed=0)


def test_group_kfold_balances_clip_counts():
    spec = {f"casme2/sub{i:02d}": [0] * n for i, n in enumerate([10, 9, 8, 1, 1, 1, 1, 1, 1, 1])}
    samples = _table(spec)
    folds = make_folds(samples, _cfg("group_kfold:3"), seed=0)
    assert sorted(f.test.size for f in folds) == [11, 11, 12]


def test_restrict_folds_and_shorthand():
    samples = _table({"casme2/sub01": [0], "casme2/sub02": [1], "samm/006": [2], "smic/s01": [0]})
    folds = make_folds(samples, _cfg("megc2019", folds=["samm/006", "sub01"]), seed=0)
    assert [(f.name, f.index) for f in folds] == [("casme2/sub01", 0), ("samm/006", 2)]
    with pytest.raises(ConfigError, match=r"unknown fold 'casme2/sub1'.*casme2/sub01.*available"):
        make_folds(samples, _cfg("megc2019", folds=["casme2/sub1"]), seed=0)
    allf = make_folds(samples, _cfg("megc2019"), seed=0)
    assert fold_by_name(allf, "sub01").name == "casme2/sub01"
    assert fold_by_name(allf, "006").name == "samm/006"
    assert fold_by_name(allf, "smic/s01").name == "smic/s01"
    amb = make_folds(_table({"casme2/s01": [0], "smic/s01": [1]}), _cfg("megc2019"), seed=0)
    with pytest.raises(ConfigError, match=r"'s01' is ambiguous: casme2/s01, smic/s01"):
        fold_by_name(amb, "s01")


def test_megc2019_requires_namespaced_subjects():
    samples = _table({"sub01": [0], "sub02": [1]})
    assert len(make_folds(samples, _cfg("loso"), seed=0)) == 2
    with pytest.raises(DataError, match=r"subject 'sub01' \(row 0\) is not namespaced"):
        make_folds(samples, _cfg("megc2019"), seed=0)
    wrong = _table({"casme2/sub01": [0], "samm/006": [1]})
    wrong.loc[1, "dataset"] = "casme2"
    with pytest.raises(DataError, match="dataset 'casme2' but subject 'samm/006'"):
        make_folds(wrong, _cfg("megc2019"), seed=0)


def test_bad_inputs():
    samples = _random_table(3)
    with pytest.raises(ConfigError, match="protocol.split"):
        make_folds(samples, _cfg("los"), seed=0)
    with pytest.raises(DataError, match="no 'subject' column"):
        make_folds(samples.drop(columns=["subject"]), _cfg(), seed=0)
    nosub = samples.copy()
    nosub.loc[2, "subject"] = None
    with pytest.raises(DataError, match=f"{nosub.loc[2, 'sample_id']} has no subject"):
        make_folds(nosub, _cfg(), seed=0)
    with pytest.raises(ConfigError, match="at least 2 subjects"):
        make_folds(_table({"casme2/sub01": [0, 1]}), _cfg(), seed=0)


def test_unlabelled_samples_still_split():
    samples = _random_table(5).drop(columns=["label"])
    folds = make_folds(samples, _cfg("loso", val=1), seed=0)
    assert len(folds) == 5
    for f in folds:
        _check_disjoint(samples, f)


def test_dry_run_tables():
    samples = _table({"casme2/sub01": [0, 0, 2], "casme2/sub02": [1], "casme2/sub03": [1, 2]})
    sc = subject_counts(samples, num_classes=3)
    assert sc.to_dict("list") == {
        "subject": ["casme2/sub01", "casme2/sub02", "casme2/sub03"],
        "clips": [3, 1, 2],
        "n_0": [2, 0, 0],
        "n_1": [0, 1, 1],
        "n_2": [1, 0, 1],
    }
    ft = fold_table(make_folds(samples, _cfg("loso", val=1), seed=0), samples, num_classes=3)
    assert ft["test"].tolist() == [3, 1, 2]
    assert (ft["train"] + ft["val"] + ft["test"]).tolist() == [6, 6, 6]
    assert ft["test_classes"].tolist() == [2, 1, 2]
    per_class = ft[["test_0", "test_1", "test_2"]].to_numpy().tolist()
    assert per_class == [[2, 0, 1], [0, 1, 0], [0, 1, 1]]


def _megc_samples() -> pd.DataFrame:
    if not MEGC_GT.exists():
        pytest.skip(MISSING)
    gt = pd.read_csv(MEGC_GT, header=None, names=["dataset", "subject", "clip", "label"], dtype=str)
    # subject namespacing: SAMM subjects zero-padded to the file prefix (6 -> samm/006)
    gt["subject"] = [
        f"{d}/{int(s):03d}" if d == "samm" else f"{d}/{s}"
        for d, s in zip(gt["dataset"], gt["subject"], strict=True)
    ]
    gt["sample_id"] = gt["subject"] + "/" + gt["clip"]
    gt["label"] = gt["label"].astype(int)
    return gt.sort_values("sample_id").reset_index(drop=True)


def test_megc2019_real_fold_sizes():
    samples = _megc_samples()
    assert len(samples) == 442
    folds = make_folds(samples, _cfg("megc2019"), seed=0)
    ft = fold_table(folds, samples, num_classes=3)
    assert len(folds) == 68
    assert ft["test"].min() == 1 and ft["test"].max() == 39
    assert (ft["test"] == 1).sum() == 8
    assert (ft["test_classes"] == 1).sum() == 23
    assert (ft["test_classes"] == 3).sum() == 16
    assert ft["test"].sum() == 442
    assert (ft["train"] == 442 - ft["test"]).all()
    by_ds = pd.Series([f.name.split("/")[0] for f in folds]).value_counts().to_dict()
    assert by_ds == {"samm": 28, "casme2": 24, "smic": 16}
    # inner validation on the composite: every training set keeps all three classes
    ftv = fold_table(make_folds(samples, _cfg("megc2019", val=4), seed=1), samples, 3)
    assert (ftv["train_classes"] == 3).all()
    assert (ftv["train"] + ftv["val"] + ftv["test"] == 442).all()


# ------------------------------------------------------------------------ search hold-out subjects
def _composite(n_casme2: int, n_samm: int, n_smic: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spec = {}
    for ds, n in (("casme2", n_casme2), ("samm", n_samm), ("smic", n_smic)):
        for i in range(1, n + 1):
            spec[f"{ds}/s{i:02d}"] = rng.integers(0, 3, int(rng.integers(1, 6))).tolist()
    return _table(spec)


def test_holdout_subjects_deterministic_sorted_and_seeded():
    samples = _random_table(12)
    a = holdout_subjects(samples, 4, seed=0)
    assert a == holdout_subjects(samples, 4, seed=0) == sorted(a)
    assert len(set(a)) == 4 and set(a) <= set(samples["subject"])
    # a pure function of the subject set: row order and clip counts do not matter
    shuffled = samples.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert holdout_subjects(shuffled, 4, seed=0) == a
    draws = {tuple(holdout_subjects(samples, 4, seed=s)) for s in range(6)}
    assert len(draws) > 1  # the seed picks them
    assert holdout_subjects(samples, 0, seed=0) == []


def test_holdout_subjects_never_look_at_labels():
    samples = _random_table(10, seed=4)
    chosen = holdout_subjects(samples, 3, seed=7)
    rng = np.random.default_rng(0)
    for _ in range(3):
        relabelled = samples.assign(label=rng.permutation(samples["label"].to_numpy()))
        relabelled["emotion"] = "negative"
        assert holdout_subjects(relabelled, 3, seed=7) == chosen
    assert holdout_subjects(samples.drop(columns=["label", "emotion"]), 3, seed=7) == chosen


def test_holdout_subjects_stratified_by_dataset():
    samples = _composite(8, 6, 4)  # 18 subjects
    chosen = holdout_subjects(samples, 9, seed=1)
    per = pd.Series([s.split("/")[0] for s in chosen]).value_counts().to_dict()
    assert per == {"casme2": 4, "samm": 3, "smic": 2}  # half of each
    # 5 of 18: exact shares 2.22 / 1.67 / 1.11 -> floors 2/1/1, the spare goes to samm (.67)
    per5 = pd.Series([s.split("/")[0] for s in holdout_subjects(samples, 5, 1)]).value_counts()
    assert per5.to_dict() == {"casme2": 2, "samm": 2, "smic": 1}
    # each dataset's draw is its own: other datasets' subjects do not shift it
    fewer = samples[~samples["subject"].isin(["smic/s04"])]
    same_casme2 = [s for s in holdout_subjects(fewer, 9, 1) if s.startswith("casme2/")]
    assert same_casme2 == [s for s in chosen if s.startswith("casme2/")]


def test_holdout_subjects_megc2019_quarter_per_dataset():
    samples = _megc_samples()
    chosen = holdout_subjects(samples, 17, seed=0)
    per = pd.Series([s.split("/")[0] for s in chosen]).value_counts().to_dict()
    assert per == {"casme2": 6, "samm": 7, "smic": 4}  # 24 / 28 / 16 subjects, a quarter each


def test_holdout_subjects_errors():
    samples = _random_table(4)
    with pytest.raises(ConfigError, match=r"search.holdout_subjects: 4 held-out .* at most 3"):
        holdout_subjects(samples, 4, seed=0)
    with pytest.raises(ConfigError, match="search.holdout_subjects: expected a value >= 0"):
        holdout_subjects(samples, -1, seed=0)
    mixed = _table({"casme2/sub01": [0, 1], "casme2/sub02": [1]})
    mixed.loc[1, "dataset"] = "samm"
    with pytest.raises(DataError, match="subject 'casme2/sub01' appears in datasets casme2, samm"):
        holdout_subjects(mixed, 1, seed=0)


@pytest.mark.parametrize("split, val", [("loso", 1), ("group_kfold:3", 1), ("megc2019", 2)])
def test_make_folds_excluded_subjects_are_in_no_split(split, val):
    samples = _composite(4, 3, 3, seed=2)
    held = holdout_subjects(samples, 3, seed=5)
    folds = make_folds(samples, _cfg(split, val=val), seed=0, exclude_subjects=held)
    subj = samples["subject"].to_numpy()
    held_rows = set(np.flatnonzero(np.isin(subj, held)).tolist())
    assert held_rows
    seen_test = []
    for f in folds:
        rows = np.concatenate([f.train, f.val, f.test])
        assert not held_rows & set(rows.tolist())  # in no split of any fold
        assert f.train.size + f.val.size + f.test.size == len(samples) - len(held_rows)
        # indices are positions in the full table: its subject column names the fold's subjects
        assert set(subj[f.test]) == set(f.test_subjects)
        assert not set(f.val_subjects) & set(held) and len(f.val_subjects) == val
        seen_test += f.test_subjects
    assert sorted(seen_test) == sorted(set(subj) - set(held))  # every development subject once
    # the same folds as the development subjects alone, mapped back to full-table indices
    dev = samples[~np.isin(subj, held)]
    alone = make_folds(dev.reset_index(drop=True), _cfg(split, val=val), seed=0)
    back = dev.index.to_numpy()
    for f, g in zip(folds, alone, strict=True):
        assert f.name == g.name and f.val_subjects == g.val_subjects
        for a, b in ((f.train, g.train), (f.val, g.val), (f.test, g.test)):
            assert np.array_equal(a, back[b])


def test_make_folds_exclusion_errors_name_the_cause():
    samples = _random_table(5)
    with pytest.raises(ConfigError, match="held-out subject.*casme2/nobody.*not in the sample"):
        make_folds(samples, _cfg(), seed=0, exclude_subjects=["casme2/nobody"])
    held = holdout_subjects(samples, 2, seed=0)
    with pytest.raises(ConfigError, match=r"group_kfold:4 .* have 3 after excluding 2 held-out"):
        make_folds(samples, _cfg("group_kfold:4"), seed=0, exclude_subjects=held)
    with pytest.raises(ConfigError, match=r"val_subjects: 2 .*after excluding 2 held-out"):
        make_folds(samples, _cfg("loso", val=2), seed=0, exclude_subjects=held)
