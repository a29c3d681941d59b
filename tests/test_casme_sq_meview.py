"""CAS(ME)^2 (`casme_sq`) and MEVIEW (`meview`): the real sheets as distributed (when present),
small trees for every layout rule and error, the label schemes, the config keys, and a synthetic
dataset of each through prepare and training."""

from __future__ import annotations

import logging
from pathlib import Path

import openpyxl
import pytest
import yaml

from mer.config import from_dict
from mer.datasets.annotations import load_samples
from mer.datasets.catalog import casme_sq, meview
from mer.datasets.labels import apply_label_scheme
from mer.datasets.problems import EXCLUDED_ATTR, InvalidRows
from mer.datasets.synthetic import write_dataset
from mer.errors import ConfigError, DataError
from tests.support.real_data import MISSING, REAL
from tests.test_annotations import frames, video, workbook

CASME_SQ_XLSX = REAL / "CAS(ME)^2.xlsx"
MEVIEW_XLS = REAL / "MEVIEW.xls"
FIXTURE_XLS = Path(__file__).parent / "fixtures" / "meview_errata.xls"
needs_real = pytest.mark.skipif(
    not (CASME_SQ_XLSX.is_file() and MEVIEW_XLS.is_file()),
    reason=MISSING,
)


def _counts(table, scheme: str) -> dict[str, int]:
    labelled, classes = apply_label_scheme(table, scheme)
    counts = labelled["label"].value_counts()
    return {c: int(counts.get(i, 0)) for i, c in enumerate(classes)}


# --------------------------------------------------------------------------- real CAS(ME)^2
@needs_real
def test_real_casme_sq_micro_expressions_by_default():
    table = load_samples("casme_sq", CASME_SQ_XLSX, check_media=False)
    assert len(table) == 57 and table["subject"].nunique() == 14
    assert set(table["expression"]) == {"micro"}
    assert _counts(table, "casme_sq_4") == {
        "negative": 21,
        "positive": 8,
        "surprise": 9,
        "others": 19,
    }
    assert _counts(table, "megc3") == {"negative": 21, "positive": 8, "surprise": 9}
    row = table.set_index("sample_id").loc["casme_sq/s15/disgust2_3"]  # sheet row 11
    assert (row["onset"], row["apex"], row["offset"]) == (699, 703, 707)
    assert row["aus"] == [] and row["aus_raw"] == "NULL" and row["emotion"] == "others"
    assert row["where"] == f"{CASME_SQ_XLSX}, sheet 'CASFEcode_final', row 11"


@needs_real
def test_real_casme_sq_macro_and_all_counts():
    macro = load_samples(
        "casme_sq", CASME_SQ_XLSX, check_media=False, expressions="macro", invalid_rows="exclude"
    )
    every = load_samples(
        "casme_sq", CASME_SQ_XLSX, check_media=False, expressions="all", invalid_rows="exclude"
    )
    # 300 macro rows: 256 read, 44 with an offset of 0 left out; 357 rows in all
    assert len(macro) + len(macro.attrs[EXCLUDED_ATTR]) == 300 and len(macro) == 256
    assert len(every) + len(every.attrs[EXCLUDED_ATTR]) == 357
    assert every["expression"].value_counts().to_dict() == {"macro": 256, "micro": 57}
    assert every["subject"].nunique() == 22


@needs_real
def test_real_casme_sq_naming_rules_and_authors_columns_agree_with_the_reader():
    wb = openpyxl.load_workbook(CASME_SQ_XLSX, read_only=True, data_only=True)
    rule1 = {(r[2], r[0]) for r in wb["naming rule1"].iter_rows(values_only=True)}
    assert rule1 == set(casme_sq.SUBJECT_FOLDERS.items())
    rule2 = {r[1]: r[0] for r in wb["naming rule2"].iter_rows(values_only=True)}
    assert rule2 == casme_sq.RECORDING_CODES
    rows = list(wb[casme_sq.SHEET].iter_rows(values_only=True))
    # K-M (`Subject`, `Filename` 1-anger1_1, `Action Units`) repeat A, B, F one row lower
    assert rows[0][10:13] == ("Subject", "Filename", "Action Units")
    for a_to_i, k_to_m in zip(rows[:357], rows[1:358], strict=True):
        assert k_to_m[10] == a_to_i[0] and k_to_m[11] == f"{a_to_i[0]}-{a_to_i[1]}"
        assert str(k_to_m[12]) == str(a_to_i[5])


# ------------------------------------------------------------------------------ real MEVIEW
@needs_real
def test_real_meview_read_as_distributed(caplog):
    with caplog.at_level(logging.WARNING):
        table = load_samples("meview", MEVIEW_XLS, check_media=False, invalid_rows="exclude")
    assert len(table) + len(table.attrs[EXCLUDED_ATTR]) == 40
    assert len(table) == 36 and table["subject"].nunique() == 15
    rows = table.set_index("sample_id")
    assert rows.loc["meview/sub03/sub03-1", "aus"] == [1, 2]  # the number 1.2
    assert rows.loc["meview/sub03/sub03-1", "aus_raw"] == "1.2"
    assert rows.loc["meview/sub11/sub11-3", "aus"] == [12]  # the number 12.0
    assert rows.loc["meview/sub11/sub11-3", "aus_raw"] == "12"
    assert rows.loc["meview/sub01/sub01-1", "aus_raw"] == "L12"
    assert (
        rows.loc["meview/sub01/sub01-1", "onset"],
        rows.loc["meview/sub01/sub01-1", "offset"],
    ) == (52, 65)
    assert _counts(table, "meview_4") == {"negative": 12, "positive": 6, "surprise": 9, "others": 9}
    assert f"{MEVIEW_XLS}, sheet 'List 1': 10 AU cell(s) stored as numbers with a decimal " in (
        caplog.text
    )
    assert "Length is not OffsetFrame - OnsetFrame on rows 3, 13" in caplog.text


# ------------------------------------------------------------------------- small CAS(ME)^2
def _casme_sq_row(subject, name, on, ap, off, aus, cls, kind="micro-expression", emo="anger"):
    return [subject, name, on, ap, off, aus, cls, kind, emo]


def casme_sq_tree(tmp_path: Path, rows: list[list]) -> tuple[Path, Path]:
    root = tmp_path / "CASME_sq"
    frames(root / "rawpic" / "s15" / "15_0401girlcrashing", [f"img{n}.jpg" for n in range(1, 13)])
    frames(root / "rawpic" / "s15" / "15_0101disgustingteeth", ["img1.jpg", "img2.jpg"])
    # the distribution's misnamed folder: s19 holds 23_0502funnyerrors
    frames(root / "rawpic" / "s19" / "23_0502funnyerrors", [f"img{n}.jpg" for n in range(1, 9)])
    ann = workbook(tmp_path / "CAS(ME)^2code_final.xlsx", {casme_sq.SHEET: rows})
    return ann, root


SMALL_SQ = [
    _casme_sq_row(1, "anger1_1", 2, 3, 5, "4+7", "negative"),
    _casme_sq_row(1, "anger1_2", 6, 8, 11, "L1+L2", "surprise"),
    _casme_sq_row(1, "anger1_3", 1, 6, 12, 12, "positive", "macro-expression", "happiness"),
    _casme_sq_row(3, "happy1_1", 2, 3, 7, "NULL", "others"),
]


def test_casme_sq_reads_the_rawpic_tree(tmp_path):
    ann, root = casme_sq_tree(tmp_path, SMALL_SQ)
    table = load_samples("casme_sq", ann, root)
    assert table["sample_id"].tolist() == [
        "casme_sq/s15/anger1_1",
        "casme_sq/s15/anger1_2",
        "casme_sq/s19/happy1_1",
    ]
    assert table["path"].tolist() == [
        str(root / "rawpic/s15/15_0401girlcrashing"),
        str(root / "rawpic/s15/15_0401girlcrashing"),
        str(root / "rawpic/s19/23_0502funnyerrors"),
    ]
    assert table["emotion"].tolist() == ["negative", "surprise", "others"]
    assert table["aus"].tolist() == [[4, 7], [1, 2], []]
    # root may be rawpic/ itself; macro-expressions on request
    assert len(load_samples("casme_sq", ann, root / "rawpic")) == 3
    every = load_samples("casme_sq", ann, root, expressions="all")
    assert every.set_index("clip").loc["anger1_3", "expression"] == "macro"
    assert load_samples("casme_sq", ann, root, expressions="macro")["clip"].tolist() == ["anger1_3"]


def test_casme_sq_skips_a_header_row_and_blank_rows(tmp_path):
    header = ["subject", "name", "onset", "apex", "offset", "AU", "class", "type", "emotion"]
    ann, root = casme_sq_tree(tmp_path, [header, [None] * 9, *SMALL_SQ])
    assert len(load_samples("casme_sq", ann, root)) == 3


def test_casme_sq_row_problems(tmp_path):
    rows = [
        *SMALL_SQ,
        _casme_sq_row(23, "anger1_4", 1, 2, 3, 4, "negative"),  # row 5: no subject 23
        _casme_sq_row(1, "sad1_1", 1, 2, 3, 4, "negative"),  # row 6: no recording sad1
        _casme_sq_row(1, "anger1_5", 1, 2, 3, 4, "negative", "tiny-expression"),  # row 7
        _casme_sq_row(1, "anger1_6", 4, 5, 0, 4, "negative"),  # row 8: offset 0
    ]
    ann, root = casme_sq_tree(tmp_path, rows)
    with pytest.raises(InvalidRows) as exc:
        load_samples("casme_sq", ann, root)
    assert [p.row for p in exc.value.problems] == [5, 6, 7, 8]
    text = str(exc.value)
    assert "row 5: subject (column A) is 23, expected one of CAS(ME)^2's subjects 1-22" in text
    assert "row 6: name (column B) is 'sad1_1', expected <recording>_<n> with a recording" in text
    assert "row 7: expression type (column H) is 'tiny-expression', expected micro-" in text
    assert "row 8: offset is 0, before onset 4 (no offset coded)" in text


def test_casme_sq_media_and_config_errors(tmp_path):
    ann, root = casme_sq_tree(tmp_path, [_casme_sq_row(2, "anger1_1", 1, 2, 3, 4, "negative")])
    with pytest.raises(DataError, match=r"row 1: frame folder .*rawpic/s16/16_0401 not found"):
        load_samples("casme_sq", ann, root)
    (tmp_path / "only_videos" / "rawvideo").mkdir(parents=True)
    with pytest.raises(DataError, match=r"neither the CAS\(ME\)\^2 folder .*rawvideo/ is not read"):
        load_samples("casme_sq", ann, tmp_path / "only_videos")
    with pytest.raises(ConfigError, match=r"data.expressions: expected one of micro, macro, all"):
        load_samples("casme_sq", ann, root, expressions="both")
    with pytest.raises(ConfigError, match=r"data.expressions: all is read only for datasets "):
        load_samples("casme2", ann, check_media=False, expressions="all")
    with pytest.raises(ConfigError, match=r"casme2 codes micro-expressions only"):
        from_dict({"data": {"dataset": "casme2", "expressions": "macro"}})
    cfg = from_dict({"data": {"dataset": "casme_sq", "expressions": "all", "labels": "casme_sq_4"},
                     "model": {"preset": "casme_sq"},
                     "train": {"class_weights": [0.2, 0.3, 0.3, 0.2]}})  # fmt: skip
    assert cfg.data.expressions == "all" and cfg.model.num_classes == 4 and cfg.model.pool == 2


# ---------------------------------------------------------------------------- small MEVIEW
def test_meview_reads_the_old_xls_format_with_its_errata(caplog):
    with pytest.raises(InvalidRows) as exc:
        load_samples("meview", FIXTURE_XLS, check_media=False)
    assert [p.row for p in exc.value.problems] == [5, 6, 8]
    assert exc.value.problems[0].what.startswith(
        "Action Units is a date cell (2013-02-01, stored as 41306)"
    )
    assert exc.value.problems[1].what == (
        "OnsetFrame and OffsetFrame are 0 (Length 0): the row codes no expression; Note: "
        "'no emotion'"
    )
    assert exc.value.problems[2].what == "Action Units is 99, which is not a FACS code"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mer.datasets.au_cells"):
        table = load_samples("meview", FIXTURE_XLS, check_media=False, invalid_rows="exclude")
    assert table["sample_id"].tolist() == [
        "meview/sub01/sub01-1",
        "meview/sub02/sub02-1",
        "meview/sub02/sub02-2",
        "meview/sub04/sub04-1",
    ]
    assert table["aus"].tolist() == [[12], [1, 2], [12], [24]]
    assert table["aus_raw"].tolist() == ["L12", "1.2", "12", "24"]
    assert table["emotion"].tolist() == ["contempt", "surprise", "happy", ""]
    assert [r.getMessage() for r in caplog.records if r.name == "mer.datasets.au_cells"] == [
        f"{FIXTURE_XLS}, sheet 'List 1': 1 AU cell(s) stored as numbers with a decimal point "
        "read as two AUs (1.2 → AU1+AU2): row 3"
    ]
    assert _counts(table, "meview_4") == {"negative": 1, "positive": 1, "surprise": 1, "others": 1}
    assert _counts(table, "megc3") == {"negative": 1, "positive": 1, "surprise": 1}


def test_meview_finds_each_video_by_its_filename(tmp_path):
    rows = [
        ["Subject", "Filename", "OnsetFrame", "OffsetFrame", "Length", "Action Units", "Emotion"],
        [1, "sub01-1", 0, 1, 1, "L12", "contempt"],
        [2, "sub02-1", 0, 1, 1, 1.2, "surprise"],
    ]
    ann = workbook(tmp_path / "MEVIEW.xlsx", {"List 1": rows})
    root = tmp_path / "MEVIEW"
    video(root / "negative" / "sub01-1.mp4")  # the original code's class folders
    video(root / "sub02-1.avi")
    table = load_samples("meview", ann, root)
    assert table["path"].tolist() == [
        str(root / "negative" / "sub01-1.mp4"),
        str(root / "sub02-1.avi"),
    ]
    video(root / "copy" / "sub02-1.mp4")
    with pytest.raises(DataError, match=r"data.root: 2 videos named sub02-1 under .*expected one"):
        load_samples("meview", ann, root)
    (root / "copy" / "sub02-1.mp4").unlink()
    (root / "sub02-1.avi").unlink()
    with pytest.raises(DataError, match=r"row 3: video file .*MEVIEW/sub02-1.mp4 not found"):
        load_samples("meview", ann, root)
    rows.append([3, "sub04-1", 0, 1, 1, 12, "happy"])
    ann = workbook(tmp_path / "bad.xlsx", {"List 1": rows})
    with pytest.raises(DataError, match=r"row 4: Filename sub04-1 names subject 4, Subject is 3"):
        load_samples("meview", ann, check_media=False)


# ------------------------------------------------------------------ synthetic, end to end
@pytest.mark.parametrize("layout", ["casme_sq", "meview"])
def test_synthetic_layout_trains_end_to_end(tmp_path, layout, capsys):
    """A synthetic CAS(ME)^2 / MEVIEW sweep (4 classes, the dataset's preset shrunk): dry run,
    prepare (decode, select, crop) and every LOSO fold trained in-process."""
    from mer.cli import main as mer_main
    from mer.cli.sweep import main as sweep_main

    spec = {"casme_sq": casme_sq.SPEC, "meview": meview.SPEC}[layout]
    sweep = {
        "name": f"syn-{layout}",
        "output": str(tmp_path / "results"),
        "data": {
            "dataset": "synthetic",
            "synthetic": {"layout": layout, "subjects": 3, "clips": 4, "frames": 8, "size": 32},
            "labels": spec.label_scheme,
            "frames": {"count": 8, "select": "motion_topk", "window": "annotated"},
            "size": 16,
            "regions": {"landmarks": "annotated", "policy": "au_oracle"},
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"preset": layout, "conv_a_channels": 4, "conv_b_channels": 4,
                  "merge_channels": 8, "attention_reduction": 4, "dense": [8],
                  "recurrent_units": 8, "msmh_scales": [2, 4], "head": [8]},
        "train": {"epochs": 1, "batch_size": 4, "class_weights": [0.2, 0.3, 0.3, 0.2],
                  "threads": 1},
    }  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    assert sweep_main([str(path), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"labels {spec.label_scheme}): 12 clips (3 negative, 3 positive, 3 surprise, 3 others)"
        in (printed)
    )
    assert mer_main(["train", str(path), "--all-folds", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pooled over folds: variant full  seed 0  (12 test clips)" in out


def test_synthetic_casme_sq_sheet_is_the_original_codes_copy(tmp_path):
    ds = write_dataset(tmp_path / "sq", "casme_sq", subjects=2, clips=3, frames=6, size=32)
    wb = openpyxl.load_workbook(ds.annotations, read_only=True)
    assert wb.sheetnames == [casme_sq.SHEET, "naming rule1", "naming rule2"]
    rows = list(wb[casme_sq.SHEET].iter_rows(values_only=True))
    assert rows[0][10:13] == ("Subject", "Filename", "Action Units")
    kinds = [r[7] for r in rows if r[7]]
    assert kinds.count("micro-expression") == 6 and kinds.count("macro-expression") == 4
    every = load_samples("casme_sq", ds.annotations, ds.root, expressions="all")
    assert len(every) == 10 and len(load_samples("casme_sq", ds.annotations, ds.root)) == 6
    assert {p.split("/rawpic/")[1] for p in every["path"]} == {
        "s15/15_0101disgustingteeth",
        "s15/15_0102eatingworms",
        "s16/16_0101disgustingteeth",
        "s16/16_0102eatingworms",
    }


@needs_real
@pytest.mark.parametrize(
    ("sweep", "annotations", "expected"),
    [
        ("casme_sq.yaml", CASME_SQ_XLSX,
         "labels casme_sq_4): 57 clips (21 negative, 8 positive, 9 surprise, 19 others), 14 "
         "subjects"),
        ("meview.yaml", MEVIEW_XLS,
         "labels meview_4): 36 clips (12 negative, 6 positive, 9 surprise, 9 others), 15 "
         "subjects\nExcluded annotation rows (4, data.invalid_rows: exclude)"),
    ],
)  # fmt: skip
def test_shipped_sweeps_dry_run_on_the_real_sheets(sweep, annotations, expected, capsys):
    """The dry run plans from the sheet alone, the media root being absent here."""
    from mer.cli.sweep import main as sweep_main

    path = Path(__file__).resolve().parents[1] / "sweeps" / sweep
    assert sweep_main([str(path), "--dry-run", "--set", f"data.annotations={annotations}"]) == 0
    printed = capsys.readouterr().out
    assert expected in printed
    folds = {"casme_sq.yaml": 14, "meview.yaml": 15}[sweep]  # one per subject
    assert f"Folds: {folds} x loso" in printed
