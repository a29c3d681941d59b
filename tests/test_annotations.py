"""Annotation readers: real annotation files (when present), every layout on small fake trees,
every error path."""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from mer.config import SourceConfig
from mer.datasets.annotations import COLUMNS, load_samples, parse_aus
from mer.errors import ConfigError, DataError
from tests.support.real_data import MISSING, REAL

CASME2_XLSX = REAL / "CASME2-coding-20140508.xlsx"
SAMM_XLSX = REAL / "SAMM_Micro_FACS_Codes_v2.xlsx"
MEGC_CSV = REAL / "combined_3class_gt.csv"

needs_real = pytest.mark.skipif(
    not (CASME2_XLSX.is_file() and SAMM_XLSX.is_file() and MEGC_CSV.is_file()),
    reason=MISSING,
)

CASME2_HEADER = [
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
]


# --------------------------------------------------------------------------------- fake files
@functools.cache
def _image_bytes(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@functools.cache
def _mp4_bytes() -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def frames(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        fmt = "BMP" if name.endswith(".bmp") else "JPEG"
        (folder / name).write_bytes(_image_bytes(fmt))
    return folder


def video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_mp4_bytes())
    return path


def workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def casme2_tree(tmp_path: Path, rows: list[list] | None = None) -> tuple[Path, Path]:
    """A CASME II-like workbook (text and int subjects, a Filename repeated across subjects)."""
    rows = (
        rows
        if rows is not None
        else [
            ["01", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
            ["01", "EP03_02", None, 2, 3, 4, None, "R4+L10", "Disgust"],
            [2, "EP02_01f", None, 1, 2, 3, None, "?", "others"],
        ]
    )
    ann = workbook(tmp_path / "coding.xlsx", {"Sheet1": [CASME2_HEADER, *rows], "Sheet2": [[None]]})
    root = tmp_path / "CASME2_RAW_selected"
    frames(root / "sub01" / "EP02_01f", [f"img{i}.jpg" for i in range(2, 10)])
    frames(root / "sub01" / "EP03_02", [f"img{i}.jpg" for i in range(1, 6)])
    frames(root / "sub02" / "EP02_01f", [f"img{i}.jpg" for i in range(1, 4)])
    return ann, root


def samm_rows(notes: int) -> list[list]:
    head = [["SAMM Dataset - Master FACS Codes"], [None], ['"/" = or']][:notes]
    head += [[None]] * (notes - len(head))
    return [
        *head,
        SAMM_HEADER,
        ["006", "006_1_2", 1, 5562, 5563, 5564, "=SUM(F15-D15)+1", "Micro", "4+7", "Anger"],
        [7, "007_3_1", 1, 10, 11, 12, None, "Micro", "A12", "Happiness"],
    ]


def samm_tree(tmp_path: Path, notes: int = 13) -> tuple[Path, Path]:
    ann = workbook(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", {"MICRO_ONLY": samm_rows(notes)})
    root = tmp_path / "SAMM"
    frames(root / "006" / "006_1_2", [f"006_0{n}.jpg" for n in range(5560, 5566)])
    frames(root / "007" / "007_3_1", [f"007_000{n}.jpg" for n in range(10, 13)])
    return ann, root


def smic_tree(tmp_path: Path) -> Path:
    hs = tmp_path / "SMIC" / "HS"
    frames(
        hs / "s1" / "micro" / "negative" / "s1_ne_01",
        ["reg_image046176.bmp", "reg_image046177.bmp"],
    )
    frames(hs / "s1" / "micro" / "surprise" / "s1_sur_01", ["reg_image000010.bmp"])
    frames(hs / "s12" / "micro" / "positive" / "s12_po_03", ["reg_image000001.bmp"])
    frames(hs / "s12" / "non_micro" / "negative" / "s12_ne_09", ["reg_image000001.bmp"])
    return tmp_path / "SMIC"


# -------------------------------------------------------------------------------- AU strings
@pytest.mark.parametrize(
    "cell, aus",
    [
        ("R12+L14", [12, 14]),
        ("4+L10", [4, 10]),
        ("?", []),
        ("", []),
        (None, []),
        (float("nan"), []),
        (12, [12]),
        (12.0, [12]),
        ("4D+ref(6)+7C+43E", [4, 6, 7, 43]),
        ("L12+R12", [12]),
        ("(R6 or R12) + R15", [6, 12, 15]),
    ],
)
def test_parse_aus(cell, aus):
    assert parse_aus(cell) == aus


# -------------------------------------------------------------------------------- real files
@needs_real
def test_real_casme2(caplog):
    with caplog.at_level(logging.WARNING):
        df = load_samples("casme2", CASME2_XLSX, check_media=False)
    assert list(df.columns) == COLUMNS
    assert len(df) == 255 and df["subject"].nunique() == 26
    assert df["sample_id"].is_unique and df["sample_id"].is_monotonic_increasing
    assert df["clip"].duplicated(keep=False).sum() == 141  # filenames repeat across subjects
    assert df["emotion"].value_counts().to_dict() == {
        "others": 99,
        "disgust": 63,
        "happiness": 32,
        "repression": 27,
        "surprise": 25,
        "sadness": 7,
        "fear": 2,
    }
    assert isinstance(df.index, pd.RangeIndex)
    assert str(df["onset"].dtype) == "Int64" and df["path"].isna().all()
    first = df.iloc[0]
    assert first["sample_id"] == "casme2/sub01/EP02_01f" and first["subject"] == "casme2/sub01"
    assert (first["onset"], first["apex"], first["offset"]) == (46, 59, 86)
    row = df.set_index("sample_id").loc["casme2/sub04/EP12_01f"]
    assert pd.isna(row["apex"]) and row["onset"] == 261 and row["aus"] == [4, 7]
    assert "row 31: ApexFrame is '/'" in caplog.text


@needs_real
def test_real_samm():
    df = load_samples("samm", SAMM_XLSX, check_media=False)
    assert len(df) == 159 and df["subject"].nunique() == 29
    row = df.iloc[0]
    assert row["sample_id"] == "samm/006/006_1_2" and row["subject"] == "samm/006"
    assert (row["onset"], row["apex"], row["offset"]) == (5562, 5588, 5632)
    assert row["emotion"] == "anger" and row["aus_raw"] == "4+7" and row["aus"] == [4, 7]
    assert df["emotion"].value_counts()["other"] == 26


@needs_real
def test_real_megc2019_with_and_without_sources():
    plain = load_samples("megc2019", MEGC_CSV, check_media=False)
    joined = load_samples(
        "megc2019",
        MEGC_CSV,
        check_media=False,
        sources={
            "casme2": SourceConfig(annotations=str(CASME2_XLSX)),
            "samm": {"annotations": str(SAMM_XLSX)},
        },
    )
    for df in (plain, joined):
        assert len(df) == 442 and df["subject"].nunique() == 68
        assert df["megc_label"].value_counts().to_dict() == {0: 250, 1: 109, 2: 83}
        parts = {
            name: (g["subject"].nunique(), *g["megc_label"].value_counts().sort_index())
            for name, g in df.groupby("dataset")
        }
        assert parts == {
            "smic": (16, 70, 51, 43),
            "casme2": (24, 88, 32, 25),
            "samm": (28, 92, 26, 15),
        }
        assert set(df["emotion"]) == {"negative", "positive", "surprise"}
    assert plain["sample_id"].tolist() == joined["sample_id"].tolist()
    by_id = joined.set_index("sample_id")
    assert by_id.loc["casme2/sub01/EP02_01f", "onset"] == 46
    assert by_id.loc["samm/006/006_1_2", "subject"] == "samm/006"
    assert by_id.loc["samm/006/006_1_2", "aus"] == [4, 7]
    assert by_id.loc["smic/s1/s1_ne_01", "subject"] == "smic/s01"
    assert plain["onset"].isna().all() and plain["aus"].map(len).eq(0).all()
    assert joined.loc[joined["dataset"] != "smic", "onset"].notna().all()


@needs_real
def test_real_megc2019_media_check_needs_roots():
    with pytest.raises(ConfigError, match=r"data.sources.casme2.root"):
        load_samples("megc2019", MEGC_CSV, check_media=True)


# ---------------------------------------------------------------------------------- casme2
def test_casme2_fake_tree_with_media(tmp_path):
    ann, root = casme2_tree(tmp_path)
    df = load_samples("casme2", ann, root)
    assert df["sample_id"].tolist() == [
        "casme2/sub01/EP02_01f",
        "casme2/sub01/EP03_02",
        "casme2/sub02/EP02_01f",
    ]
    assert df["subject"].tolist() == ["casme2/sub01", "casme2/sub01", "casme2/sub02"]
    assert df["path"].tolist() == [
        str(root / "sub01/EP02_01f"),
        str(root / "sub01/EP03_02"),
        str(root / "sub02/EP02_01f"),
    ]
    assert df["emotion"].tolist() == ["happiness", "disgust", "others"]
    assert df["aus"].tolist() == [[12], [4, 10], []]
    assert df["aus_raw"].tolist() == ["12", "R4+L10", "?"]
    assert df["onset"].tolist() == [3, 2, 1]
    assert df["where"].tolist() == [f"{ann}, sheet 'Sheet1', row {n}" for n in (2, 3, 4)]


def test_casme2_missing_frames_folder(tmp_path):
    ann, root = casme2_tree(tmp_path, [["03", "EP09_01", None, 1, 2, 3, None, 4, "fear"]])
    with pytest.raises(
        DataError,
        match=r"coding.xlsx, sheet 'Sheet1', row 2: frame folder .*sub03"
        r"/EP09_01 not found",
    ):
        load_samples("casme2", ann, root)
    assert len(load_samples("casme2", ann, root, check_media=False)) == 1


def test_casme2_frame_range_outside_clip(tmp_path):
    ann, root = casme2_tree(tmp_path, [["01", "EP02_01f", None, 3, 5, 12, None, 4, "fear"]])
    with pytest.raises(
        DataError,
        match=r"row 2: offset frame 12 is outside the clip: .*EP02_01f "
        r"holds frames 2..9",
    ):
        load_samples("casme2", ann, root)


def test_casme2_onset_after_offset(tmp_path):
    ann, root = casme2_tree(tmp_path, [["01", "EP02_01f", None, 8, 5, 3, None, 4, "fear"]])
    with pytest.raises(DataError, match=r"row 2: onset 8 comes after apex 5"):
        load_samples("casme2", ann, root, check_media=False)


def test_casme2_duplicate_id_names_both_rows(tmp_path):
    ann, root = casme2_tree(
        tmp_path,
        [
            ["01", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
            ["02", "EP02_01f", None, 1, 2, 3, None, 12, "happiness"],
            [1, "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
        ],
    )
    with pytest.raises(
        DataError,
        match=r"duplicate sample id casme2/sub01/EP02_01f: .*row 2 and "
        r".*row 4",
    ):
        load_samples("casme2", ann, root, check_media=False)


def test_casme2_text_frame_is_na_and_logged(tmp_path, caplog):
    ann, root = casme2_tree(tmp_path, [["01", "EP02_01f", None, 3, "/", 8, None, 12, "happiness"]])
    with caplog.at_level(logging.WARNING):
        df = load_samples("casme2", ann, root)
    assert pd.isna(df.loc[0, "apex"]) and df.loc[0, "offset"] == 8
    assert "row 2: ApexFrame is '/', not a frame number; read as unknown (NA)" in caplog.text


def _warnings(caplog, logger: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING
    ]


def test_blank_frame_cells_logged_once_per_file(tmp_path, caplog):
    rows = [
        ["01", "EP02_01f", None, None, 5, 8, None, 12, "happiness"],
        ["01", "EP03_02", None, 2, None, None, None, "R4+L10", "Disgust"],
        [2, "EP02_01f", None, 1, 2, 3, None, "?", "others"],
    ]
    ann, root = casme2_tree(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        df = load_samples("casme2", ann, root)
    assert df["onset"].isna().tolist() == [True, False, False]
    assert _warnings(caplog, "mer.datasets.records") == [
        f"{ann}, sheet 'Sheet1': 3 blank frame cell(s) read as unknown (NA): OnsetFrame on "
        "row 2; ApexFrame on row 3; OffsetFrame on row 3"
    ]


def test_blank_frame_cells_casme3_and_first_rows_only(tmp_path, caplog):
    rows = [["spNO.1", "a", n, None, None, "4", 1, "happy"] for n in range(1, 8)]
    ann, root = casme3_tree(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        load_samples("casme3", ann, root, check_media=False)
    (line,) = _warnings(caplog, "mer.datasets.records")
    assert line.endswith(
        "14 blank frame cell(s) read as unknown (NA): Apex on rows 2, 3, 4, 5, 6 (+2 more); "
        "Offset on rows 2, 3, 4, 5, 6 (+2 more)"
    )


def test_casme2_bad_subject_and_missing_column(tmp_path):
    ann, _ = casme2_tree(tmp_path, [["x1", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"]])
    with pytest.raises(DataError, match=r"row 2: Subject is 'x1', expected a subject number"):
        load_samples("casme2", ann, check_media=False)
    bad = workbook(
        tmp_path / "nocol.xlsx",
        {
            "Sheet1": [
                [
                    "Subject",
                    "Filename",
                    "OnsetFrame",
                    "ApexFrame",
                    "Action Units",
                    "Estimated Emotion",
                ],
                ["01", "EP02_01f", 3, 5, 12, "happiness"],
            ]
        },
    )
    with pytest.raises(DataError, match=r"no column 'Offset Frame' .* header on row 1"):
        load_samples("casme2", bad, check_media=False)


def test_empty_sheet_and_relative_paths(tmp_path, monkeypatch):
    ann, _ = casme2_tree(tmp_path, [])
    with pytest.raises(DataError, match=r"casme2: no clips in .*coding.xlsx"):
        load_samples("casme2", ann, check_media=False)
    ann, _ = casme2_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    df = load_samples("casme2", "coding.xlsx", "CASME2_RAW_selected")
    assert df["path"].iloc[0] == str(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP02_01f")


def test_missing_annotation_file_and_sheet(tmp_path):
    with pytest.raises(DataError, match=r"annotation file .*nope.xlsx not found"):
        load_samples("casme2", tmp_path / "nope.xlsx", check_media=False)
    other = workbook(tmp_path / "other.xlsx", {"Data": [CASME2_HEADER]})
    with pytest.raises(DataError, match=r"has no sheet 'Sheet1' \(sheets: Data\)"):
        load_samples("casme2", other, check_media=False)


# ------------------------------------------------------------------------------------ samm
@pytest.mark.parametrize("notes", [13, 4])
def test_samm_header_found_by_content(tmp_path, notes):
    ann, root = samm_tree(tmp_path, notes)
    df = load_samples("samm", ann, root)
    assert df["sample_id"].tolist() == ["samm/006/006_1_2", "samm/007/007_3_1"]
    assert df["subject"].tolist() == ["samm/006", "samm/007"]
    assert df["emotion"].tolist() == ["anger", "happiness"]
    assert df["aus"].tolist() == [[4, 7], [12]]
    assert df["path"].tolist() == [str(root / "006/006_1_2"), str(root / "007/007_3_1")]


def test_samm_header_not_found(tmp_path):
    ann = workbook(tmp_path / "samm.xlsx", {"MICRO_ONLY": [["notes"], ["Subj", "File"]]})
    with pytest.raises(
        DataError,
        match=r"header not found in .*samm.xlsx, sheet 'MICRO_ONLY': "
        r"expected a row whose cells include 'Subject' and "
        r"'Filename'",
    ):
        load_samples("samm", ann, check_media=False)


def test_samm_error_row_is_excel_row(tmp_path):
    rows = samm_rows(13)
    rows[-1][3] = 10.5  # onset of the second clip, Excel row 16
    ann = workbook(tmp_path / "samm.xlsx", {"MICRO_ONLY": rows})
    with pytest.raises(DataError, match=r"row 16: Onset Frame is 10.5, expected a whole frame"):
        load_samples("samm", ann, check_media=False)


# ------------------------------------------------------------------------------------ smic
@pytest.mark.parametrize("sub", ["", "HS"])
def test_smic_from_folders(tmp_path, sub):
    root = smic_tree(tmp_path)
    df = load_samples("smic", None, root / sub if sub else root)
    assert df["sample_id"].tolist() == [
        "smic/s1/s1_ne_01",
        "smic/s1/s1_sur_01",
        "smic/s12/s12_po_03",
    ]
    assert df["subject"].tolist() == ["smic/s01", "smic/s01", "smic/s12"]
    assert df["emotion"].tolist() == ["negative", "surprise", "positive"]
    assert df["onset"].isna().all() and df["aus"].tolist() == [[], [], []]
    assert df["path"].iloc[0] == str(root / "HS/s1/micro/negative/s1_ne_01")
    no_media = load_samples("smic", None, root, check_media=False)
    assert no_media["sample_id"].tolist() == df["sample_id"].tolist()
    assert no_media["path"].isna().all()


def test_smic_errors(tmp_path):
    root = smic_tree(tmp_path)
    (root / "HS/s1/micro/negative/s1_ne_02").mkdir()
    with pytest.raises(DataError, match=r"HS/s1/micro/negative/s1_ne_02: no frames"):
        load_samples("smic", None, root)
    with pytest.raises(DataError, match=r"neither the SMIC folder"):
        load_samples("smic", None, tmp_path / "SMIC" / "HS" / "s1")
    with pytest.raises(ConfigError, match=r"data.root: smic needs the media root"):
        load_samples("smic", None, None, check_media=False)
    with pytest.raises(ConfigError, match=r"smic .* reads no annotation file"):
        load_samples("smic", tmp_path / "x.xlsx", root)


# ---------------------------------------------------------------------------------- casme3
def casme3_tree(tmp_path: Path, rows: list[list]) -> tuple[Path, Path]:
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    ann = workbook(tmp_path / "casme3_label.xlsx", {"labels": [header, *rows]})
    frames(tmp_path / "CASME3" / "part_A" / "spNO.1" / "a", [f"{i}.jpg" for i in range(1, 31)])
    return ann, tmp_path / "CASME3"


def test_casme3_several_clips_per_recording(tmp_path):
    ann, parent = casme3_tree(
        tmp_path,
        [
            ["spNO.1", "a", 20, 22, 25, "L12", 1, "happy"],
            ["spNO.1", "a", 3, 4, 9, "4+7", 2, "Disgust"],
        ],
    )
    for root in (parent, parent / "part_A"):
        df = load_samples("casme3", ann, root)
        assert df["sample_id"].tolist() == ["casme3/spNO.1/a/20", "casme3/spNO.1/a/3"]
        assert df["subject"].tolist() == ["casme3/spNO.1"] * 2
        assert df["clip"].tolist() == ["a", "a"]
        assert df["emotion"].tolist() == ["happy", "disgust"]
        assert df["path"].tolist() == [str(parent / "part_A/spNO.1/a")] * 2


def test_casme3_errors(tmp_path):
    ann, root = casme3_tree(tmp_path, [["spNO.1", "a", None, 22, 25, "L12", 1, "happy"]])
    with pytest.raises(DataError, match=r"row 2: Onset is empty"):
        load_samples("casme3", ann, root, check_media=False)
    ann, root = casme3_tree(tmp_path, [["spNO.1", "a", 20, 22, 40, "L12", 1, "happy"]])
    with pytest.raises(DataError, match=r"row 2: offset frame 40 is outside the clip"):
        load_samples("casme3", ann, root)
    ann, root = casme3_tree(
        tmp_path,
        [["spNO.1", "a", 3, 4, 9, "4", 1, "happy"], ["spNO.1", "a", 3, 5, 9, "4", 1, "happy"]],
    )
    with pytest.raises(
        DataError,
        match=r"duplicate sample id casme3/spNO.1/a/3: .*row 2 and "
        r".*row 3",
    ):
        load_samples("casme3", ann, root)


# ------------------------------------------------------------------------------- deception
def deception_tree(tmp_path: Path) -> Path:
    clips = tmp_path / "RealLife" / "Clips"
    video(clips / "Deceptive" / "trial_lie_001.mp4")
    video(clips / "Deceptive" / "trial_lie_002.mp4")
    video(clips / "Truthful" / "trial_truth_001.mp4")
    return tmp_path / "RealLife"


def test_deception_without_subject_csv_warns(tmp_path, caplog):
    root = deception_tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        df = load_samples("deception", None, root)
    assert df["subject"].tolist() == [
        "deception/trial_lie_001",
        "deception/trial_lie_002",
        "deception/trial_truth_001",
    ]
    assert df["emotion"].tolist() == ["deceptive", "deceptive", "truthful"]
    assert df["path"].iloc[2] == str(root / "Clips/Truthful/trial_truth_001.mp4")
    assert "leave-one-clip-out (NOT subject independent)" in caplog.text
    assert load_samples("deception", None, root / "Clips")["sample_id"].equals(df["sample_id"])


def test_deception_subject_csv(tmp_path):
    root = deception_tree(tmp_path)
    csv = tmp_path / "people.csv"
    csv.write_text("clip,person\ntrial_lie_001.mp4,p1\ntrial_lie_002,p2\ntrial_truth_001,p1\n")
    df = load_samples("deception", csv, root)
    assert df["subject"].tolist() == ["deception/p1", "deception/p1", "deception/p2"]
    assert df["sample_id"].tolist() == [
        "deception/p1/trial_lie_001",
        "deception/p1/trial_truth_001",
        "deception/p2/trial_lie_002",
    ]
    csv.write_text("clip,person\ntrial_lie_001,p1\ntrial_truth_001,p1\n")
    with pytest.raises(DataError, match=r"people.csv: no row for clip trial_lie_002"):
        load_samples("deception", csv, root, check_media=False)


# ---------------------------------------------------------------------------------- videos
def test_videos_layout(tmp_path, caplog):
    root = tmp_path / "data"
    video(root / "negative" / "EP19_05f.mp4")
    video(root / "surprise" / "EP01_01.mp4")
    (root / "negative" / "training_frames").mkdir()  # the original code wrote outputs here
    ann = workbook(
        tmp_path / "excel_file.xlsx",
        {
            "Sheet1": [
                ["Subject", "Filename", "Action Units", "Estimated Emotion"],
                [1, "EP19_05f", "4+L10", "disgust"],
                ["7", "EP01_01.mp4", "R1+R2", "surprise"],
                [9, "EP99_99", "12", "happiness"],
            ]
        },
    )
    with caplog.at_level(logging.WARNING):
        df = load_samples("videos", ann, root)
        load_samples("videos", ann, root, check_media=False)  # a dry run says it too
    assert df["sample_id"].tolist() == ["videos/1/EP19_05f", "videos/7/EP01_01"]
    unused = (
        f"videos: 1 of 3 row(s) of {ann}, sheet 'Sheet1' have no video under {root}/<class>/ "
        "and are not read (emotion column: happiness 1; first: EP99_99 (row 4))"
    )
    assert _warnings(caplog, "mer.datasets.catalog.videos") == [unused, unused]
    assert df["subject"].tolist() == ["videos/1", "videos/7"]
    assert df["emotion"].tolist() == ["negative", "surprise"]
    assert df["aus"].tolist() == [[4, 10], [1, 2]]
    video(root / "positive" / "EP02_02.mp4")
    with pytest.raises(
        DataError,
        match=r"excel_file.xlsx, sheet 'Sheet1': no row with Filename "
        r"EP02_02",
    ):
        load_samples("videos", ann, root)


def test_video_file_missing_or_empty(tmp_path):
    root = deception_tree(tmp_path)
    (root / "Clips" / "Truthful" / "trial_truth_002.mp4").write_bytes(b"")
    with pytest.raises(DataError, match=r"video file .*trial_truth_002.mp4 is empty"):
        load_samples("deception", None, root)


# -------------------------------------------------------------------------------- megc2019
def megc_tree(tmp_path: Path, lines: str) -> tuple[Path, dict]:
    c_ann, c_root = casme2_tree(tmp_path)
    s_ann, s_root = samm_tree(tmp_path)
    csv = tmp_path / "combined_3class_gt.csv"
    csv.write_text(lines.replace("\n", "\r\n"))
    sources = {
        "casme2": SourceConfig(root=str(c_root), annotations=str(c_ann)),
        "samm": {"root": str(s_root), "annotations": str(s_ann)},
        "smic": {"root": str(smic_tree(tmp_path))},
    }
    return csv, sources


GOOD = "casme2,sub01,EP02_01f,1\nsamm,6,006_1_2,0\nsmic,s01,s01_ne_01,0\nsmic,s12,s12_po_03,1\n"


def test_megc2019_joins_sources_and_checks_media(tmp_path):
    csv, sources = megc_tree(tmp_path, GOOD)
    df = load_samples("megc2019", csv, sources=sources)
    assert list(df.columns) == [*COLUMNS, "megc_label"]
    assert df["sample_id"].tolist() == [
        "casme2/sub01/EP02_01f",
        "samm/006/006_1_2",
        "smic/s1/s1_ne_01",
        "smic/s12/s12_po_03",
    ]
    assert df["subject"].tolist() == ["casme2/sub01", "samm/006", "smic/s01", "smic/s12"]
    assert df["dataset"].tolist() == ["casme2", "samm", "smic", "smic"]
    assert df["megc_label"].tolist() == [1, 0, 0, 1]
    assert df["emotion"].tolist() == ["positive", "negative", "negative", "positive"]
    assert df["onset"].tolist()[:2] == [3, 5562] and df["aus"].tolist()[:2] == [[12], [4, 7]]
    assert df["path"].tolist()[1] == sources["samm"]["root"] + "/006/006_1_2"
    assert df["path"].notna().all()
    assert df["where"].tolist()[:2] == [
        f"{csv}, line 1 ({sources['casme2'].annotations}, sheet 'Sheet1', row 2)",
        f"{csv}, line 2 ({sources['samm']['annotations']}, sheet 'MICRO_ONLY', row 15)",
    ]


def test_megc2019_unmatched_row(tmp_path):
    csv, sources = megc_tree(tmp_path, GOOD + "samm,7,007_9_9,2\n")
    with pytest.raises(
        DataError,
        match=r"combined_3class_gt.csv, line 5: samm,7,007_9_9,2 matches "
        r"no samm clip",
    ):
        load_samples("megc2019", csv, sources=sources, check_media=False)
    csv, sources = megc_tree(tmp_path, GOOD + "smic,s02,s02_ne_01,0\n")
    with pytest.raises(DataError, match=r"line 5: smic,s02,s02_ne_01,0 matches no smic clip"):
        load_samples("megc2019", csv, sources=sources)


@pytest.mark.parametrize(
    "line, message",
    [
        ("casme2,sub01,EP03_02,3", r"line 5: label '3', expected 0, 1 or 2"),
        ("casme3,spNO.1,a,0", r"line 5: dataset 'casme3' is not one of casme2, samm, smic"),
        ("casme2,sub01,EP03_02", r"line 5: expected 4 fields"),
        ("casme2,sub01,EP02_01f,1", r"duplicate sample id casme2/sub01/EP02_01f: .*line 1 .*5"),
    ],
)
def test_megc2019_bad_lines(tmp_path, line, message):
    csv, _ = megc_tree(tmp_path, GOOD + line + "\n")
    with pytest.raises(DataError, match=message):
        load_samples("megc2019", csv, check_media=False)


def test_megc2019_sources_validation(tmp_path):
    csv, sources = megc_tree(tmp_path, GOOD)
    # the config's rule (mer.datasets.registry.check_source_keys), also for plain arguments
    with pytest.raises(ConfigError, match=r"data.sources: unknown part\(s\) casme3; the MEGC2019"):
        load_samples("megc2019", csv, sources={"casme3": {"root": "x"}}, check_media=False)
    with pytest.raises(ConfigError, match=r"data.sources.samm.folder: unknown key"):
        load_samples("megc2019", csv, sources={"samm": {"folder": "x"}}, check_media=False)
    del sources["smic"]
    with pytest.raises(ConfigError, match=r"data.sources.smic.root"):
        load_samples("megc2019", csv, sources=sources)
    partial = load_samples("megc2019", csv, sources=sources, check_media=False)
    assert partial["onset"].tolist()[:2] == [3, 5562] and partial["path"].isna().all()


def test_megc2019_errors_name_the_sources_key(tmp_path, caplog):
    csv, sources = megc_tree(tmp_path, GOOD)
    sources["smic"] = {"root": str(tmp_path / "nowhere" / "HS")}
    with pytest.raises(DataError, match=r"^data.sources.smic.root: SMIC folder .*nowhere/HS not f"):
        load_samples("megc2019", csv, sources=sources)
    # a dry run plans a part whose files are not on this machine from the MEGC list, and says so
    with caplog.at_level("WARNING", logger="mer.datasets.catalog.megc2019"):
        planned = load_samples("megc2019", csv, sources=sources, check_media=False)
    assert "data.sources.smic.root" in caplog.text and "from the MEGC2019 list alone" in caplog.text
    assert (planned["dataset"] == "smic").sum() == GOOD.count("smic,")
    sources["smic"] = {"root": str(tmp_path)}
    with pytest.raises(DataError, match=r"^data.sources.smic.root: .* is neither the SMIC folder"):
        load_samples("megc2019", csv, sources=sources)
    csv, sources = megc_tree(tmp_path, GOOD)
    sources["samm"] = {"root": str(tmp_path / "SAMM"), "annotations": str(tmp_path / "no.xlsx")}
    with pytest.raises(DataError, match=r"^data.sources.samm.annotations: samm annotation file "):
        load_samples("megc2019", csv, sources=sources)
    sources["samm"] = {
        "root": str(tmp_path / "nope"),
        "annotations": str(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx"),
    }
    with pytest.raises(DataError, match=r"^data.sources.samm.root: samm media root .*nope is not"):
        load_samples("megc2019", csv, sources=sources)
    load_samples("megc2019", csv, sources=sources, check_media=False)  # a dry run reads no media


def test_megc2019_refuses_ignored_keys_and_names_unused_sources(tmp_path, caplog):
    csv, sources = megc_tree(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"data.sources.smic.annotations: SMIC .* no annotation"):
        smic = {"smic": {"root": "x", "annotations": "y.xlsx"}}
        load_samples("megc2019", csv, sources=smic, check_media=False)
    with pytest.raises(ConfigError, match=r"data.root: not read for megc2019; .* data.sources.<"):
        load_samples("megc2019", csv, tmp_path, sources=sources)
    csv.write_text("casme2,sub01,EP02_01f,1\n")
    with caplog.at_level(logging.WARNING):
        load_samples("megc2019", csv, sources=sources, check_media=False)
    assert _warnings(caplog, "mer.datasets.catalog.megc2019") == [
        f"data.sources: {csv} lists no clip of samm, smic; those sources are not read"
    ]


# ----------------------------------------------------------------------------- entry point
def test_load_samples_argument_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"load_samples\(<data.synthetic.layout>"):
        load_samples("synthetic", None, tmp_path)
    with pytest.raises(ConfigError, match=r"unknown dataset 'casme'"):
        load_samples("casme", None, tmp_path)
    with pytest.raises(ConfigError, match=r"data.annotations: casme2 needs its annotation file"):
        load_samples("casme2", None, tmp_path)
    ann, _ = casme2_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"data.root: casme2 needs the media root"):
        load_samples("casme2", ann, None, check_media=True)
    with pytest.raises(DataError, match=r"media root .*missing is not a folder"):
        load_samples("casme2", ann, tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"data.sources: only read for dataset megc2019 .*remove"):
        load_samples("casme2", ann, sources={"samm": {}}, check_media=False)


# ------------------------------------------------- label-scheme errors name the file and row
CASME2_KNOWN = "disgust, fear, happiness, others, repression, sadness, surprise"
FOLDER3_KNOWN = "negative, positive, surprise"


def _label_error(dataset: str, ann: Path | None, root: Path | None, scheme: str = "megc3") -> str:
    """The label scheme's error on a table the real reader built (media checked when given)."""
    from mer.datasets.labels import apply_label_scheme

    df = load_samples(dataset, ann, root, check_media=root is not None)
    with pytest.raises(DataError) as exc:
        apply_label_scheme(df, scheme)
    return str(exc.value)


def test_unknown_emotion_names_xlsx_sheet_and_row(tmp_path):
    ann, root = casme2_tree(
        tmp_path,
        [
            ["01", "EP02_01f", None, 3, 5, 8, None, 12, "happiness"],
            ["01", "EP03_02", None, 2, 3, 4, None, "R4+L10", "hapiness"],  # row 3: the typo
            [2, "EP02_01f", None, 1, 2, 3, None, "?", "Joy"],
        ],
    )
    message = (
        f"{ann}, sheet 'Sheet1', row 3: emotion 'hapiness' of sample casme2/sub01/EP03_02 is "
        f"not known to label scheme megc3 for casme2 (known: {CASME2_KNOWN}) (1 more samples too)"
    )
    assert _label_error("casme2", ann, None) == message  # dry run: annotations only
    assert _label_error("casme2", ann, root) == message  # prepare: media checked too


def test_unknown_emotion_names_samm_row_below_the_notes(tmp_path):
    rows = samm_rows(13)
    rows[-1][-1] = "Happyness"
    ann = workbook(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", {"MICRO_ONLY": rows})
    assert _label_error("samm", ann, None).startswith(
        f"{ann}, sheet 'MICRO_ONLY', row 16: emotion 'happyness' of sample samm/007/007_3_1 "
        "is not known to label scheme megc3 for samm (known: anger, contempt, "
    )


def test_unknown_class_folder_names_the_clip_path(tmp_path):
    root = smic_tree(tmp_path)
    clip = frames(root / "HS" / "s1" / "micro" / "Happy" / "s1_ha_01", ["reg_image000001.bmp"])
    assert _label_error("smic", None, root) == (
        f"{clip}: class folder 'happy' of sample smic/s1/s1_ha_01 is not known to label scheme "
        f"megc3 for smic (known: {FOLDER3_KNOWN})"
    )


def test_unknown_class_folder_videos_and_deception(tmp_path):
    root = tmp_path / "data"
    video(root / "negative" / "EP19_05f.mp4")
    clip = video(root / "happy" / "EP01_01.mp4")
    ann = workbook(
        tmp_path / "excel_file.xlsx",
        {
            "Sheet1": [
                ["Subject", "Filename", "Action Units"],
                [1, "EP19_05f", "4+L10"],
                ["7", "EP01_01.mp4", "12"],
            ]
        },
    )
    assert _label_error("videos", ann, root) == (
        f"{clip} ({ann}, sheet 'Sheet1', row 3): class folder 'happy' of sample "
        f"videos/7/EP01_01 is not known to label scheme megc3 for videos (known: {FOLDER3_KNOWN})"
    )
    deception = deception_tree(tmp_path)
    lie = video(deception / "Clips" / "Lies" / "trial_lie_009.mp4")
    assert _label_error("deception", None, deception, "deception2") == (
        f"{lie}: class folder 'lies' of sample deception/trial_lie_009/trial_lie_009 is not "
        "known to label scheme deception2 for deception (known: deceptive, truthful)"
    )


# ------------------------------------------------------------- synthetic datasets read back
@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    pytest.importorskip("mer.datasets.synthetic")
    return tmp_path_factory.mktemp("synthetic")


def _expected_id(layout: str, clip) -> str:
    suffix = f"/{clip.onset}" if layout == "casme3" else ""
    return f"{layout}/{clip.subject}/{clip.clip}{suffix}"


@pytest.mark.parametrize("layout", ["casme2", "samm", "smic", "casme3", "deception", "videos"])
def test_synthetic_layout_reads_back(synthetic_root, layout):
    from mer.datasets.labels import apply_label_scheme
    from mer.datasets.synthetic import write_dataset

    ds = write_dataset(synthetic_root / layout, layout, subjects=2, clips=4, frames=6, size=32)
    df = load_samples(layout, ds.annotations, ds.root)
    assert len(df) == len(ds.clips) == 8
    assert df["subject"].nunique() == len(ds.subjects) == 2
    rows = df.set_index("sample_id")
    for clip in ds.clips:
        row = rows.loc[_expected_id(layout, clip)]
        folder_class = clip.label3 if layout == "videos" else clip.emotion  # videos: folder
        assert row["emotion"] == folder_class.lower()
        assert row["path"] == str(clip.media)
        if layout in ("casme2", "samm", "casme3"):
            assert (row["onset"], row["apex"], row["offset"]) == (
                clip.onset,
                clip.apex,
                clip.offset,
            )
        if layout != "smic" and layout != "deception":
            assert row["aus_raw"] == clip.aus and row["aus"] == parse_aus(clip.aus)
    scheme = "deception2" if layout == "deception" else "megc3"
    labelled, classes = apply_label_scheme(df, scheme)
    want = {
        _expected_id(layout, c): (c.emotion.lower() if layout == "deception" else c.label3)
        for c in ds.clips
    }
    assert {s: classes[k] for s, k in zip(labelled["sample_id"], labelled["label"])} == {
        s: w for s, w in want.items() if w is not None
    }


def test_synthetic_megc2019_composite_reads_back(synthetic_root):
    from mer.datasets.catalog.megc2019 import write_megc2019
    from mer.datasets.labels import apply_label_scheme

    megc = write_megc2019(synthetic_root / "megc", subjects=2, clips=4, frames=6, size=32)
    sources = {
        name: SourceConfig(
            root=str(part.root), annotations=str(part.annotations) if part.annotations else None
        )
        for name, part in megc.parts.items()
    }
    df = load_samples("megc2019", megc.gt, sources=sources)
    three_class = [
        (name, c) for name, part in megc.parts.items() for c in part.clips if c.label3 is not None
    ]
    assert len(df) == len(three_class) and df["subject"].nunique() == 6
    rows = df.set_index("sample_id")
    for name, clip in three_class:
        row = rows.loc[_expected_id(name, clip)]
        assert row["emotion"] == clip.label3 and row["path"] == str(clip.media)
    labelled, _ = apply_label_scheme(df, "megc3")
    assert labelled["label"].tolist() == df["megc_label"].tolist()
    assert set(df.loc[df["dataset"] == "smic", "subject"]) == {"smic/s01", "smic/s02"}
