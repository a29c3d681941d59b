"""Sheet errata: every invalid row of a read collected in one pass and reported together
(`data.invalid_rows: error`) or left out and listed (`exclude`) in the sample table, the dry run,
plan.json, summary.md and the report; explainable cells repaired with a warning; AU cells
checked against FACS; the real sheets' errata, row by row."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from mer.config import SourceConfig, from_dict
from mer.data.cache import load_prepared, load_samples_only, prepare_data
from mer.datasets.annotations import load_samples
from mer.datasets.au_cells import read_au_cell
from mer.datasets.problems import EXCLUDED_ATTR, InvalidRows, RowError
from mer.datasets.synthetic import write_dataset
from mer.errors import ConfigError, DataError
from mer.experiment.describe import describe
from mer.experiment.excluded import excluded_lines, excluded_note
from mer.experiment.plan import build_plan
from tests.support.real_data import MISSING, REAL
from tests.test_annotations import casme2_tree, samm_tree, video, workbook

CASME2_XLSX = REAL / "CASME2-coding-20140508.xlsx"
SAMM_XLSX = REAL / "SAMM_Micro_FACS_Codes_v2.xlsx"
CASME_SQ_XLSX = REAL / "CAS(ME)^2.xlsx"
MEVIEW_XLS = REAL / "MEVIEW.xls"
MEGC_CSV = REAL / "combined_3class_gt.csv"
needs_real = pytest.mark.skipif(
    not all(p.is_file() for p in (CASME2_XLSX, SAMM_XLSX, CASME_SQ_XLSX, MEVIEW_XLS, MEGC_CSV)),
    reason=MISSING,
)

# rows 2..6 of a CASME II-like sheet: rows 3, 4, 5 and 6 are invalid, in four different ways
ERRATA = [
    ["01", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
    ["x1", "EP03_02", None, 2, 3, 4, None, 4, "disgust"],  # row 3: subject
    ["01", "EP04_01", None, 5, 7, 0, None, 12, "happiness"],  # row 4: offset 0
    [2, "EP02_01f", None, 6, 4, 9, None, dt.datetime(2013, 2, 1), "others"],  # row 5: AU date
    [2, "EP05_02", None, 8, 5, 3, None, 14, "disgust"],  # row 6: onset after apex
]


def _problem_rows(exc: InvalidRows) -> list[int]:
    return [p.row for p in exc.problems]


# ----------------------------------------------------------------------- one pass, all rows
def test_every_invalid_row_is_reported_in_one_run(tmp_path):
    ann, _ = casme2_tree(tmp_path, ERRATA)
    with pytest.raises(InvalidRows) as exc:
        load_samples("casme2", ann, check_media=False)
    # the reader's problems in row order, then those of the rows' frame order
    assert _problem_rows(exc.value) == [3, 5, 4, 6]
    at = f"{ann}, sheet 'Sheet1', row"
    lines = str(exc.value).splitlines()
    assert lines[0] == (
        "4 invalid annotation rows (data.invalid_rows: exclude reads the other rows and lists "
        "these):"
    )
    assert lines[1] == f"  - {at} 3: Subject is 'x1', expected a subject number such as 01"
    assert lines[2] == (
        f"  - {at} 5: Action Units is a date cell (2013-02-01, stored as 41306), not AU codes "
        "(the spreadsheet turned the cell into a date); expected FACS codes such as 1+2, L12 or "
        "4+R10 (codes 0-2, 4-46, 50-58, 61-66, 69-74, 80-82, 84, 85, 91, 92, 97, 98)"
    )
    assert lines[3] == (
        f"  - {at} 4: offset is 0, before onset 5 (no offset coded); expected onset <= apex <= "
        "offset"
    )
    assert lines[4] == f"  - {at} 6: onset 8 comes after apex 5; expected onset <= apex <= offset"
    assert len(lines) == 5
    assert isinstance(exc.value, DataError)  # the CLI prints it like every data error


def test_exclude_reads_the_rest_and_lists_the_rows(tmp_path):
    ann, _ = casme2_tree(tmp_path, ERRATA)
    table = load_samples("casme2", ann, check_media=False, invalid_rows="exclude")
    assert table["sample_id"].tolist() == ["casme2/sub01/EP02_01f"]
    excluded = table.attrs[EXCLUDED_ATTR]
    assert [(e["row"], e["sample_id"]) for e in excluded] == [
        (3, None),  # the subject could not be read, so neither could the clip
        (5, "casme2/sub02/EP02_01f"),
        (4, "casme2/sub01/EP04_01"),
        (6, "casme2/sub02/EP05_02"),
    ]
    assert {e["file"] for e in excluded} == {str(ann)} and {e["sheet"] for e in excluded} == {
        "Sheet1"
    }
    assert excluded[2]["what"] == "offset is 0, before onset 5 (no offset coded)"
    assert excluded[2]["expected"] == "onset <= apex <= offset"


def test_a_single_invalid_row_keeps_its_message_and_says_how_to_go_on(tmp_path):
    ann, _ = casme2_tree(tmp_path, [ERRATA[0], ERRATA[4]])
    with pytest.raises(DataError) as exc:
        load_samples("casme2", ann, check_media=False)
    assert str(exc.value) == (
        f"{ann}, sheet 'Sheet1', row 3: onset 8 comes after apex 5; expected onset <= apex <= "
        "offset (data.invalid_rows: exclude reads the other rows and lists these)"
    )


def test_everything_excluded_is_still_an_error(tmp_path):
    ann, _ = casme2_tree(tmp_path, [ERRATA[2]])
    with pytest.raises(DataError, match=r"casme2: no clips in .*coding.xlsx \(1 invalid row"):
        load_samples("casme2", ann, check_media=False, invalid_rows="exclude")
    with pytest.raises(ConfigError, match=r"data.invalid_rows: expected one of error, exclude"):
        load_samples("casme2", ann, check_media=False, invalid_rows="skip")


def test_duplicate_rows_are_both_excluded(tmp_path):
    rows = [ERRATA[0], ["02", "EP09_01", None, 1, 2, 3, None, 4, "fear"], ["1", *ERRATA[0][1:]]]
    ann, _ = casme2_tree(tmp_path, rows)
    table = load_samples("casme2", ann, check_media=False, invalid_rows="exclude")
    assert table["sample_id"].tolist() == ["casme2/sub02/EP09_01"]
    excluded = table.attrs[EXCLUDED_ATTR]
    assert [e["row"] for e in excluded] == [2, 4]
    assert all("describe the same clip" in e["what"] for e in excluded)


def test_apex_outside_onset_offset_is_unknown_with_a_warning(tmp_path, caplog):
    rows = [
        ["01", "EP02_01f", None, 3, 9, 8, None, 12, "happiness"],  # row 2: apex after offset
        ["01", "EP03_02", None, 2, 0, 4, None, 4, "disgust"],  # row 3: apex 0
        ["02", "EP04_01", None, 1, 2, 3, None, 4, "disgust"],
    ]
    ann, _ = casme2_tree(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="mer.datasets.records"):
        table = load_samples("casme2", ann, check_media=False)
    assert table["apex"].isna().tolist() == [True, True, False]
    assert table.attrs[EXCLUDED_ATTR] == []
    assert caplog.messages == [
        f"2 row(s) with the apex outside onset..offset: apex read as unknown (NA): {ann}, sheet "
        f"'Sheet1', row 2 (apex 9 outside onset..offset 3..8); {ann}, sheet 'Sheet1', row 3 "
        "(apex 0 outside onset..offset 2..4)"
    ]


def test_media_problems_are_reported_together(tmp_path):
    rows = [
        ["01", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
        ["05", "EP09_01", None, 1, 2, 3, None, 4, "fear"],
        ["06", "EP09_02", None, 1, 2, 3, None, 4, "fear"],
    ]
    ann, root = casme2_tree(tmp_path, rows)
    with pytest.raises(DataError) as exc:
        load_samples("casme2", ann, root, invalid_rows="exclude")
    lines = str(exc.value).splitlines()
    assert lines[0] == "2 of 3 clips' media are missing or do not match their annotation:"
    assert "row 3: frame folder" in lines[1] and "sub05/EP09_01 not found" in lines[1]
    assert "row 4: frame folder" in lines[2] and "sub06/EP09_02 not found" in lines[2]


def test_readers_of_other_layouts_collect_too(tmp_path):
    # CAS(ME)^3: an empty onset and a bad AU, both listed
    ann = workbook(
        tmp_path / "c3.xlsx",
        {
            "label": [
                ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "class", "emotion"],
                ["spNO.1", "a", 1, 2, 3, "4+7", 1, "anger"],
                ["spNO.1", "a", None, 5, 6, "4", 1, "anger"],
                ["spNO.2", "b", 1, 2, 3, "4+300", 1, "anger"],
            ]
        },
    )  # fmt: skip
    with pytest.raises(InvalidRows) as exc:
        load_samples("casme3", ann, check_media=False)
    assert _problem_rows(exc.value) == [3, 4]
    assert "Onset is empty" in str(exc.value) and "'4+300' holds 300" in str(exc.value)
    # videos: an invalid row whose video exists is left out; one without a video is unused
    root = tmp_path / "data"
    video(root / "negative" / "EP19_05f.mp4")
    video(root / "positive" / "EP01_01.mp4")
    sheet = workbook(
        tmp_path / "v.xlsx",
        {
            "Sheet1": [
                ["Subject", "Filename", "Action Units"],
                [1, "EP19_05f", "4+L10"],
                [2, "EP01_01", 41306],
                [3, "EP77_07", 41306],
            ]
        },
    )
    with pytest.raises(InvalidRows) as exc:
        load_samples("videos", sheet, root)
    assert _problem_rows(exc.value) == [3]
    assert "Action Units is 41306, which is not a FACS code (the Excel date 2013-02-01" in str(
        exc.value
    )
    table = load_samples("videos", sheet, root, invalid_rows="exclude")
    assert table["clip"].tolist() == ["EP19_05f"]


def test_megc2019_lists_a_parts_invalid_rows_and_excludes_their_lines(tmp_path):
    # casme2 sheet: row 3 offset 0 (found on the joined clip), row 4 an AU date (its reader's)
    ann, root = casme2_tree(tmp_path, [ERRATA[0], ERRATA[2], ERRATA[3]])
    s_ann, s_root = samm_tree(tmp_path)
    csv = tmp_path / "gt.csv"
    csv.write_text(
        "casme2,sub01,EP02_01f,1\ncasme2,sub01,EP04_01,1\ncasme2,sub02,EP02_01f,0\n"
        "samm,6,006_1_2,0\n"
    )
    sources = {
        "casme2": SourceConfig(root=str(root), annotations=str(ann)),
        "samm": {"root": str(s_root), "annotations": str(s_ann)},
    }
    with pytest.raises(InvalidRows) as exc:
        load_samples("megc2019", csv, sources=sources, check_media=False)
    wheres = [p.where for p in exc.value.problems]
    assert wheres == [
        f"{ann}, sheet 'Sheet1', row 4",
        f"{csv}, line 3",
        f"{csv}, line 2 ({ann}, sheet 'Sheet1', row 3)",
    ]
    assert exc.value.problems[1].what == (
        "casme2,sub02,EP02_01f,0 is the clip of an invalid casme2 row"
    )
    assert (
        exc.value.problems[1].expected
        == f"a valid row ({ann}, sheet 'Sheet1', row 4, listed above)"
    )
    table = load_samples(
        "megc2019", csv, sources=sources, check_media=False, invalid_rows="exclude"
    )
    assert table["sample_id"].tolist() == ["casme2/sub01/EP02_01f", "samm/006/006_1_2"]
    assert len(table.attrs[EXCLUDED_ATTR]) == 3


# ----------------------------------------------------------------------------- AU cells
@pytest.mark.parametrize(
    ("cell", "aus", "raw", "decimal"),
    [
        (None, [], "", False),
        (math.nan, [], "", False),
        (12, [12], "12", False),
        (12.0, [12], "12", False),  # MEVIEW's 12.0
        (1.2, [1, 2], "1.2", True),  # MEVIEW's 1.2 = AU1+AU2
        ("L12", [12], "L12", False),
        ("R12+L14", [12, 14], "R12+L14", False),
        ("L12+R12", [12], "L12+R12", False),
        ("1A+2B+L14C", [1, 2, 14], "1A+2B+L14C", False),
        ("12+15 ", [12, 15], "12+15 ", False),  # raw kept as written
        ("NULL", [], "NULL", False),
        ("10or11", [10, 11], "10or11", False),
        ("74", [74], "74", False),  # unscorable: a FACS code
        ("?", [], "?", False),
    ],
)
def test_au_cells_read(cell, aus, raw, decimal):
    assert read_au_cell(cell, "here") == (aus, raw, decimal)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (41306, "here: Action Units is 41306, which is not a FACS code (the Excel date 2013-02-01"),
        (dt.datetime(2013, 2, 1), "here: Action Units is a date cell (2013-02-01, stored as 4130"),
        (dt.date(2013, 2, 1), "here: Action Units is a date cell (2013-02-01, stored as 41306)"),
        ("2013-02-01 00:00:00", "here: Action Units '2013-02-01 00:00:00' holds 2013, which is"),
        ("4+3", "here: Action Units '4+3' holds 3, which is not a FACS code; expected FACS"),
        ("99+100", "here: Action Units '99+100' holds 99, 100, which are not FACS codes"),
        (1.3, "here: Action Units 1.3 (read as AUs 1+3) holds 3, which is not a FACS code"),
        (-4, "here: Action Units is the number -4; expected FACS codes"),
        (True, "here: Action Units is True; expected FACS codes"),
    ],
)  # fmt: skip
def test_au_cells_outside_facs_are_reported(cell, message):
    with pytest.raises(RowError) as exc:
        read_au_cell(cell, "here")
    assert str(exc.value).startswith(message)


# ----------------------------------------------------- dry run, plan.json, cache, summary
def _synthetic_casme2_with_errata(tmp_path: Path) -> tuple[Path, Path]:
    """A synthetic CASME II dataset (media included) whose sheet gets two invalid rows."""
    ds = write_dataset(tmp_path / "ds", "casme2", subjects=2, clips=4, frames=6, size=32)
    wb = openpyxl.load_workbook(ds.annotations)
    sheet = wb["Sheet1"]
    first = [c.value for c in sheet[2]]
    sheet.append([first[0], "EP99_01", None, 4, 6, 0, None, "12", "happiness"])  # offset 0
    sheet.append([first[0], "EP99_02", None, 1, 2, 3, None, "4+3", "disgust"])  # AU 3
    wb.save(ds.annotations)
    return ds.annotations, ds.root


def _config(tmp_path: Path, ann: Path, root: Path, invalid_rows: str):
    return from_dict(
        {
            "name": "errata",
            "data": {
                "dataset": "casme2",
                "annotations": str(ann),
                "root": str(root),
                "invalid_rows": invalid_rows,
                "frames": {"count": 4, "select": "uniform"},
                "size": 16,
                "regions": {"policy": "none"},
                "cache_dir": str(tmp_path / "cache"),
            },
            "model": {"pool": 2},
        }
    )


def test_excluded_rows_reach_the_dry_run_plan_json_cache_summary_and_report(tmp_path):
    ann, root = _synthetic_casme2_with_errata(tmp_path)
    with pytest.raises(InvalidRows, match=r"^2 invalid annotation rows"):
        load_samples_only(_config(tmp_path, ann, root, "error").data)
    cfg = _config(tmp_path, ann, root, "exclude")
    plan = build_plan(cfg, load_samples_only)
    section = plan.to_json()["excluded_rows"]
    assert section["count"] == 2
    assert [(r["row"], r["sample_id"]) for r in section["rows"]] == [
        (11, "casme2/sub01/EP99_02"),  # the reader's problems first (AU), then the frames'
        (10, "casme2/sub01/EP99_01"),
    ]
    text = describe(plan)
    assert "Excluded annotation rows (2, data.invalid_rows: exclude)" in text
    assert f"{ann}, sheet 'Sheet1', row 10: offset is 0, before onset 4 (no offset coded); " in text
    # the prepared table keeps the list (a real run plans from it), also when reopened
    data = prepare_data(cfg.data, progress=False)
    assert len(data.samples) == 6  # 8 clips, 2 "others" dropped by megc3; the 2 rows left out
    assert data.samples.attrs[EXCLUDED_ATTR] == section["rows"]
    assert load_prepared(data.path).samples.attrs[EXCLUDED_ATTR] == section["rows"]
    # what summary.md and the report render from plan.json
    md = excluded_lines(plan.to_json(), markdown=True)
    assert md[0] == (
        "## Excluded annotation rows (2, data.invalid_rows: exclude): the sheet's invalid rows, "
        "left out of every fold"
    )
    assert md[2].startswith(f"- {ann}, sheet 'Sheet1', row 11: Action Units '4+3' holds 3, ")
    assert md[2].endswith("[casme2/sub01/EP99_02]")
    (note,) = excluded_note(plan.to_json())
    assert note.count(str(ann)) == 2
    assert excluded_lines({"excluded_rows": {"count": 0, "rows": []}}) == []
    assert excluded_lines({}) == []  # a plan.json written before the key existed


def test_summary_md_and_the_report_list_the_excluded_rows(tmp_path, monkeypatch):
    """A results folder (the experiment tests' filler) whose sample table left two rows out."""
    from mer.experiment.summary import write_summary
    from mer.report import write_report
    from tests import test_sweep_results as filled

    rows = [
        {"where": "gt.csv, line 4", "what": "label '7'", "expected": "0, 1 or 2", "row": 4},
        {"where": "c.xlsx, sheet 'S', row 9", "what": "offset is 0", "sample_id": "casme2/a/b"},
    ]
    table = filled._samples()
    table.attrs[EXCLUDED_ATTR] = rows
    monkeypatch.setattr(filled, "_samples", lambda: table)
    plan, _ = filled.fill(tmp_path)
    assert plan.to_json()["excluded_rows"] == {"count": 2, "rows": rows}
    write_summary(tmp_path, plan)
    summary = (tmp_path / "summary.md").read_text()
    assert (
        "## Excluded annotation rows (2, data.invalid_rows: exclude): the sheet's invalid rows, "
        "left out of every fold\n\n- gt.csv, line 4: label '7'; expected 0, 1 or 2\n"
        "- c.xlsx, sheet 'S', row 9: offset is 0 [casme2/a/b]\n"
    ) in summary
    write_report(tmp_path)
    report = (tmp_path / "report" / "report.md").read_text()
    assert (
        "- Excluded annotation rows (2, data.invalid_rows: exclude): the sheet's invalid rows, "
        "left out of every fold: gt.csv, line 4: label '7'; expected 0, 1 or 2; c.xlsx, sheet "
        "'S', row 9: offset is 0 [casme2/a/b]\n"
    ) in report


# -------------------------------------------------------------------- the real sheets' errata
#: Every invalid row of the shipped real sheets (Excel row numbers), found with every
#: expression read: CAS(ME)^2's offset-0 rows are all macro-expressions.
CASME_SQ_OFFSET_0 = [3, 14, 30, 32, 57, 82, 84, 85, 87, 88, 94, 95, 96, 97, 113, 131, 149, 154,
                     182, 210, 213, 214, 215, 218, 240, 247, 249, 269, 279, 310, 315, 316, 325,
                     326, 327, 332, 334, 339, 341, 344, 346, 355, 356, 357]  # fmt: skip
#: Rows whose apex lies outside onset..offset (read as unknown, with a warning): 170, 242 and
#: 262 have the apex after the offset, 309 an apex of 0 (so "onset after apex").
CASME_SQ_APEX_REPAIRED = [170, 242, 262, 309]
MEVIEW_INVALID = {
    7: "Action Units is a date cell (2013-02-01, stored as 41306)",
    10: "OnsetFrame and OffsetFrame are 0 (Length 0): the row codes no expression; Note: 'no e",
    38: "OnsetFrame and OffsetFrame are 0 (Length 0): the row codes no expression; Note: 'no m",
    39: "OnsetFrame and OffsetFrame are 0 (Length 0): the row codes no expression; Note: 'spea",
}


@needs_real
def test_real_casme2_samm_and_megc_lists_have_no_invalid_row(caplog):
    with caplog.at_level(logging.WARNING):
        casme2 = load_samples("casme2", CASME2_XLSX, check_media=False)
    assert casme2.attrs[EXCLUDED_ATTR] == [] and len(casme2) == 255
    # the one repaired cell: `/` as the apex of sub04/EP12_01f
    assert f"{CASME2_XLSX}, sheet 'Sheet1', row 31: ApexFrame is '/'" in caplog.text
    assert pd.isna(casme2.set_index("sample_id").loc["casme2/sub04/EP12_01f", "apex"])
    assert load_samples("samm", SAMM_XLSX, check_media=False).attrs[EXCLUDED_ATTR] == []
    assert load_samples("megc2019", MEGC_CSV, check_media=False).attrs[EXCLUDED_ATTR] == []


@needs_real
def test_real_casme_sq_errata(caplog):
    with pytest.raises(InvalidRows) as exc:
        load_samples("casme_sq", CASME_SQ_XLSX, check_media=False, expressions="all")
    assert _problem_rows(exc.value) == CASME_SQ_OFFSET_0
    assert all(p.what.startswith("offset is 0, before onset ") for p in exc.value.problems)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mer.datasets.records"):
        every = load_samples(
            "casme_sq", CASME_SQ_XLSX, check_media=False, expressions="all", invalid_rows="exclude"
        )
    repaired = [int(r) for r in re.findall(r"row (\d+) \(apex", caplog.text)]
    assert repaired == CASME_SQ_APEX_REPAIRED
    assert "row 309 (apex 0 outside onset..offset 1763..1787)" in caplog.text
    assert len(every) + len(every.attrs[EXCLUDED_ATTR]) == 357
    # the micro-expressions, read by default, have none of them
    micro = load_samples("casme_sq", CASME_SQ_XLSX, check_media=False)
    assert len(micro) == 57 and micro.attrs[EXCLUDED_ATTR] == []


@needs_real
def test_real_meview_errata():
    with pytest.raises(InvalidRows) as exc:
        load_samples("meview", MEVIEW_XLS, check_media=False)
    assert {p.row: p.what[: len(MEVIEW_INVALID[p.row])] for p in exc.value.problems} == (
        MEVIEW_INVALID
    )
    assert {p.sample_id for p in exc.value.problems} == {
        "meview/sub05/sub05-1",
        "meview/sub07/sub07-1",
        "meview/sub15/sub15-3",
        "meview/sub16/sub16-1",
    }
    assert {p.sheet for p in exc.value.problems} == {"List 1"}


def test_a_valid_sheet_reads_the_same_under_either_policy(tmp_path):
    ann, _ = casme2_tree(tmp_path)
    a = load_samples("casme2", ann, check_media=False)
    b = load_samples("casme2", ann, check_media=False, invalid_rows="exclude")
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs[EXCLUDED_ATTR] == [] and len(a) == 3
