"""Label schemes: class mappings, dropped clips, unknown emotions, real-file counts."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from mer.datasets.annotations import load_samples
from mer.datasets.labels import apply_label_scheme, class_names, schemes
from mer.errors import ConfigError, DataError
from tests.support.real_data import MISSING, REAL

CASME2_XLSX = REAL / "CASME2-coding-20140508.xlsx"
SAMM_XLSX = REAL / "SAMM_Micro_FACS_Codes_v2.xlsx"
MEGC_CSV = REAL / "combined_3class_gt.csv"

needs_real = pytest.mark.skipif(
    not (CASME2_XLSX.is_file() and SAMM_XLSX.is_file() and MEGC_CSV.is_file()),
    reason=MISSING,
)


def table(dataset: str, emotions: list[str], **extra) -> pd.DataFrame:
    n = len(emotions)
    return pd.DataFrame(
        {
            "sample_id": [f"{dataset}/s{i}/c{i}" for i in range(n)],
            "dataset": [dataset] * n,
            "subject": [f"{dataset}/s{i}" for i in range(n)],
            "emotion": emotions,
            **extra,
        },
        index=range(10, 10 + n),
    )


def test_scheme_registry_and_class_names():
    assert set(schemes()) == {
        "megc3",
        "casme2_5",
        "casme3_3",
        "casme3_4",
        "casme3_7",
        "casme_sq_4",
        "meview_4",
        "megc2019_official",
        "deception2",
        "folder3",
        "folder4",
    }
    assert class_names("megc3") == ["negative", "positive", "surprise"]
    assert class_names("casme2_5") == ["happiness", "disgust", "repression", "surprise", "others"]
    assert class_names("casme3_4") == ["negative", "positive", "surprise", "others"]
    assert len(class_names("casme3_7")) == 7
    assert class_names("deception2") == ["deceptive", "truthful"]
    with pytest.raises(ConfigError, match=r"data.labels: unknown label scheme 'megc'"):
        class_names("megc")


def test_megc3_casme2_mapping_and_drop_log(caplog):
    samples = table(
        "casme2",
        ["disgust", "repression", "happiness", "surprise", "others", "fear", "sadness", "others"],
    )
    with caplog.at_level(logging.INFO, logger="mer.datasets.labels"):
        out, classes = apply_label_scheme(samples, "megc3")
    assert classes == ["negative", "positive", "surprise"]
    assert out["label"].tolist() == [0, 0, 1, 2]
    assert out["label"].dtype == "int64"
    assert out["sample_id"].tolist() == [f"casme2/s{i}/c{i}" for i in range(4)]
    assert isinstance(out.index, pd.RangeIndex) and out.index[0] == 0
    assert (
        "megc3: dropped 4 of 8 clips (casme2 fear 1, casme2 others 2, casme2 sadness 1)"
        in caplog.text
    )
    assert len(samples) == 8 and "label" not in samples  # input untouched


def test_megc3_samm_smic_and_casme3():
    samm, _ = apply_label_scheme(
        table(
            "samm",
            ["anger", "contempt", "disgust", "fear", "sadness", "happiness", "surprise", "other"],
        ),
        "megc3",
    )
    assert samm["label"].tolist() == [0, 0, 0, 0, 0, 1, 2]
    smic, _ = apply_label_scheme(table("smic", ["surprise", "negative", "positive"]), "megc3")
    assert smic["label"].tolist() == [2, 0, 1]
    c3, _ = apply_label_scheme(
        table("casme3", ["anger", "happy", "surprise", "others", "sad"]), "megc3"
    )
    assert c3["label"].tolist() == [0, 1, 2, 0]


def test_megc3_uses_official_label():
    samples = table("casme2", ["others", "negative", "positive"], megc_label=[2, 0, 1])
    out, _ = apply_label_scheme(samples, "megc3")
    assert out["label"].tolist() == [2, 0, 1]  # emotion column not consulted


def test_unknown_emotion_names_sample_and_vocabulary():
    with pytest.raises(
        DataError,
        match=r"sample casme2/s1/c1: emotion 'joy' is not known to "
        r"label scheme megc3 for casme2 \(known: disgust, fear, "
        r"happiness, others, repression, sadness, surprise\) "
        r"\(1 more samples too\)",
    ):
        apply_label_scheme(table("casme2", ["disgust", "joy", "Anger"]), "megc3")
    with pytest.raises(
        DataError,
        match=r"class folder 'deceptive' is not known .* \(known: negative, "
        r"positive, surprise\)",
    ):
        apply_label_scheme(table("deception", ["deceptive"]), "megc3")


def test_row_errors_start_with_where():
    """A table from the readers has `where` (file, sheet, row): row errors start with it and
    still name the sample; a table without it (an older cache) falls back to the sample id."""
    rows = ["x.xlsx, sheet 'Sheet1', row 2", "x.xlsx, sheet 'Sheet1', row 3"]
    with pytest.raises(DataError) as exc:
        apply_label_scheme(table("casme2", ["disgust", "hapiness"], where=rows), "megc3")
    assert str(exc.value) == (
        "x.xlsx, sheet 'Sheet1', row 3: emotion 'hapiness' of sample casme2/s1/c1 is not known "
        "to label scheme megc3 for casme2 (known: disgust, fear, happiness, others, repression, "
        "sadness, surprise)"
    )
    with pytest.raises(DataError) as exc:
        apply_label_scheme(table("smic", ["happy"], where=["/d/HS/s1/micro/happy/c"]), "megc3")
    assert str(exc.value).startswith(
        "/d/HS/s1/micro/happy/c: class folder 'happy' of sample smic/s0/c0 is not known"
    )
    megc = table("casme2", ["others"], megc_label=[5], where=["gt.csv, line 7 (x.xlsx, row 9)"])
    with pytest.raises(DataError) as exc:
        apply_label_scheme(megc, "megc3")
    assert str(exc.value) == (
        "gt.csv, line 7 (x.xlsx, row 9): megc_label 5 of sample casme2/s0/c0 is not 0, 1 or 2"
    )
    with pytest.raises(DataError, match=r"^sample casme2/s0/c0: megc_label 5 is not 0, 1 or 2$"):
        apply_label_scheme(megc.drop(columns=["where"]), "megc3")
    out, _ = apply_label_scheme(table("casme2", ["disgust", "fear"], where=rows), "megc3")
    assert out["where"].tolist() == rows[:1]  # kept with its row


def test_scheme_for_other_dataset_and_empty_result():
    with pytest.raises(
        DataError,
        match=r"label scheme casme2_5 does not apply to dataset samm "
        r"\(sample samm/s0/c0\); it is for casme2",
    ):
        apply_label_scheme(table("samm", ["anger"]), "casme2_5")
    with pytest.raises(DataError, match=r"label scheme megc3: no clip is left \(2 read\)"):
        apply_label_scheme(table("casme2", ["others", "fear"]), "megc3")


def test_casme3_schemes():
    emotions = ["happy", "sad", "Surprise", "others", "anger", "disgust", "fear", "sadness"]
    three, _ = apply_label_scheme(table("casme3", emotions), "casme3_3")
    assert three["label"].tolist() == [1, 0, 2, 0, 0, 0, 0]
    four, _ = apply_label_scheme(table("casme3", emotions), "casme3_4")
    assert four["label"].tolist() == [1, 0, 2, 3, 0, 0, 0, 0]
    seven, names = apply_label_scheme(table("casme3", emotions), "casme3_7")
    assert [names[i] for i in seven["label"]] == [
        "happy",
        "sad",
        "surprise",
        "others",
        "anger",
        "disgust",
        "fear",
        "sad",
    ]


def test_casme2_5_deception2_folder3(caplog):
    five, _ = apply_label_scheme(
        table("casme2", ["happiness", "disgust", "repression", "surprise", "others", "fear"]),
        "casme2_5",
    )
    assert five["label"].tolist() == [0, 1, 2, 3, 4]
    dec, _ = apply_label_scheme(table("deception", ["truthful", "deceptive"]), "deception2")
    assert dec["label"].tolist() == [1, 0]
    with caplog.at_level(logging.WARNING, logger="mer.datasets.labels"):
        folders, _ = apply_label_scheme(table("videos", ["positive", "negative"]), "folder3")
    assert folders["label"].tolist() == [1, 0]
    assert "no clip of class surprise" in caplog.text


@needs_real
def test_real_casme2_megc3_counts():
    samples = load_samples("casme2", CASME2_XLSX, check_media=False)
    out, classes = apply_label_scheme(samples, "megc3")
    assert len(out) == 147 and out["subject"].nunique() == 24  # → 24 LOSO folds
    assert out["label"].value_counts().sort_index().tolist() == [90, 32, 25]
    assert {"casme2/sub10", "casme2/sub18"} == set(samples["subject"]) - set(out["subject"])
    five, _ = apply_label_scheme(samples, "casme2_5")
    assert len(five) == 246 and five["subject"].nunique() == 26


@needs_real
def test_real_samm_and_megc2019_counts():
    samm, _ = apply_label_scheme(load_samples("samm", SAMM_XLSX, check_media=False), "megc3")
    assert len(samm) == 133 and samm["subject"].nunique() == 28
    assert samm["label"].value_counts().sort_index().tolist() == [92, 26, 15]
    megc, _ = apply_label_scheme(load_samples("megc2019", MEGC_CSV, check_media=False), "megc3")
    assert len(megc) == 442 and megc["subject"].nunique() == 68
    assert megc["label"].value_counts().sort_index().tolist() == [250, 109, 83]
