"""Synthetic datasets: real layouts read back, landmark ground truth, determinism, markers."""

from __future__ import annotations

import argparse
import hashlib
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from PIL import Image

from mer.cli.synth import add_parser
from mer.config import SyntheticConfig
from mer.datasets.catalog.megc2019 import ensure_megc2019, write_megc2019
from mer.datasets.registry import with_synthetic_layout
from mer.datasets.synthetic import ensure_dataset, landmark_path, write_dataset
from mer.datasets.synthetic.face import MIRROR, canonical_shape, parse_aus
from mer.datasets.synthetic.plan import plan_layout
from mer.datasets.synthetic.sequence import (
    Blink,
    Expression,
    SequencePlan,
    Subject,
    render_sequence,
)
from mer.errors import ConfigError, DataError
from tests.support.real_data import MISSING, REAL

SMALL = dict(subjects=2, clips=3, frames=8, size=64)
H, W = 64, 86  # SMALL frames: 64 high, 4:3 wide rounded to even
CASME2_COLUMNS = ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame",
                  "Unnamed: 6", "Action Units", "Estimated Emotion"]  # fmt: skip
SAMM_COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
                "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
                "Objective Classes", "Notes"]  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Each layout written once for the whole module (small sizes)."""
    base = tmp_path_factory.mktemp("synth")
    cache = {}

    def get(layout: str, **kw):
        key = (layout, tuple(sorted(kw.items())))
        if key not in cache:
            params = {**SMALL, **kw}
            name = f"{layout}-" + "-".join(f"{k}{v}" for k, v in sorted(kw.items()))
            cache[key] = write_dataset(base / name, layout, **params)
        return cache[key]

    return get


def sheet_names(path: Path) -> list[str]:
    with pd.ExcelFile(path) as xl:
        return list(xl.sheet_names)


def frame_number(path: Path) -> int:
    return int(re.findall(r"\d+", path.stem)[-1])


def folder_frames(media: Path) -> list[Path]:
    return sorted((p for p in media.iterdir() if p.is_file()), key=frame_number)


def test_casme2_workbook_and_frames(made):
    ds = made("casme2", subjects=3, clips=4)
    assert ds.annotations.name == "CASME2-coding-20140508.xlsx"
    sheets = pd.read_excel(ds.annotations, sheet_name=None)
    assert list(sheets) == ["Sheet1", "Sheet2", "Sheet3"]
    assert sheets["Sheet2"].empty and sheets["Sheet3"].empty
    df = sheets["Sheet1"]
    assert list(df.columns) == CASME2_COLUMNS
    assert len(df) == 12 and sorted(df["Subject"].unique()) == [1, 2, 3]
    assert df["Unnamed: 2"].isna().all() and df["Unnamed: 6"].isna().all()
    # Subject is text "01" in the cell, as in the real sheet; pandas turns it into 1.
    ws = openpyxl.load_workbook(ds.annotations)["Sheet1"]
    assert [ws.cell(r, 1).value for r in range(2, 6)] == ["01", "01", "01", "01"]
    # Filenames repeat across subjects (samples must be keyed by subject and filename).
    assert df.groupby("Filename")["Subject"].nunique().max() >= 2
    assert set(df["Estimated Emotion"]) <= {
        "happiness",
        "disgust",
        "repression",
        "surprise",
        "others",
        "sadness",
        "fear",
    }
    # One clip per subject outside the three classes by default (clips >= 4).
    unlabelled = [c for c in ds.clips if c.label3 is None]
    assert len(unlabelled) == 3 and {c.emotion for c in unlabelled} <= {"others", "sadness", "fear"}
    # Single numeric AUs are numbers in the cells, combinations text.
    for c, cell in zip(ds.clips, df["Action Units"], strict=True):
        assert cell == (int(c.aus) if c.aus.isdigit() else c.aus)
    for c, (_, row) in zip(ds.clips, df.iterrows(), strict=True):
        assert (
            c.media
            == ds.root / c.subject / c.clip
            == ds.root / f"sub{row.Subject:02d}" / (row.Filename)
        )
        files = folder_frames(c.media)
        nums = [frame_number(p) for p in files]
        assert [p.name for p in files] == [f"img{n}.jpg" for n in nums]
        assert nums == list(range(nums[0], nums[0] + 8))
        assert (row.OnsetFrame, row.ApexFrame, row.OffsetFrame) == (c.onset, c.apex, c.offset)
        assert nums[0] <= c.onset < c.apex <= c.offset <= nums[-1]
    with Image.open(folder_frames(ds.clips[0].media)[0]) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (W, H))


def test_samm_workbook_and_grey_frames(made):
    ds = made("samm")
    assert ds.annotations.name == "SAMM_Micro_FACS_Codes_v2.xlsx"
    assert sheet_names(ds.annotations) == ["MICRO_ONLY"]
    df = pd.read_excel(ds.annotations, sheet_name="MICRO_ONLY", header=13, dtype={"Subject": str})
    assert list(df.columns) == SAMM_COLUMNS
    assert len(df) == 6 and list(df["Subject"].unique()) == ["006", "007"]
    assert (df["Duration"] == df["Offset Frame"] - df["Onset Frame"] + 1).all()
    assert set(df["Micro"]) == {"Micro - 1/2"}
    assert set(df["Estimated Emotion"]) <= {
        "Anger",
        "Contempt",
        "Disgust",
        "Fear",
        "Sadness",
        "Happiness",
        "Surprise",
        "Other",
    }
    for c, (_, row) in zip(ds.clips, df.iterrows(), strict=True):
        assert re.fullmatch(rf"{row.Subject}_{row['Inducement Code']}_\d+", row.Filename)
        assert c.media == ds.root / row.Subject / row.Filename
        files = folder_frames(c.media)
        assert all(re.fullmatch(rf"{row.Subject}_\d{{5}}\.jpg", p.name) for p in files)
        assert frame_number(files[0]) <= row["Onset Frame"] < row["Apex Frame"]
        assert row["Apex Frame"] <= row["Offset Frame"] <= frame_number(files[-1])
    with Image.open(folder_frames(ds.clips[0].media)[0]) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "L", (W, H))


def test_smic_folders_give_the_class(made):
    ds = made("smic")
    assert ds.annotations is None and ds.root.name == "SMIC"
    assert [c.subject for c in ds.clips] == ["s1"] * 3 + ["s2"] * 3
    abbr = {"negative": "ne", "positive": "po", "surprise": "sur"}
    for c in ds.clips:
        assert c.media == ds.root / "HS" / c.subject / "micro" / c.label3 / c.clip
        assert re.fullmatch(rf"{c.subject}_{abbr[c.label3]}_\d\d", c.clip)
        files = folder_frames(c.media)
        assert all(re.fullmatch(r"reg_image\d{6}\.bmp", p.name) for p in files)
        assert frame_number(files[0]) <= c.onset < c.apex <= c.offset <= frame_number(files[-1])
    with Image.open(folder_frames(ds.clips[0].media)[0]) as im:
        assert (im.format, im.mode, im.size) == ("BMP", "RGB", (W, H))


def test_casme3_several_expressions_per_folder(made):
    ds = made("casme3", clips=4)
    df = pd.read_excel(ds.annotations, sheet_name="label")
    assert ds.annotations.name == "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    assert list(df.columns) == ["Subject", "Filename", "Onset", "Apex", "Offset", "AU",
                                "Objective class", "emotion"]  # fmt: skip
    assert len(df) == 8 and set(df["Subject"]) == {"spNO.1", "spNO.2"}
    per_folder = df.groupby(["Subject", "Filename"]).size()
    assert len(per_folder) == 4 and (per_folder == 2).all()
    assert df.groupby(["Subject", "Filename"])["Onset"].nunique().eq(2).all()
    for c in ds.clips:
        files = folder_frames(c.media)
        assert [p.name for p in files] == [f"{n}.jpg" for n in range(1, 17)]
        assert 1 <= c.onset < c.apex <= c.offset <= 16
        assert np.load(landmark_path(c.media)).shape == (16, 68, 2)
    assert {c.emotion for c in ds.clips} <= {
        "happy",
        "disgust",
        "surprise",
        "fear",
        "anger",
        "sad",
        "others",
    }


def test_deception_videos_and_mapping(made, tmp_path):
    import decord

    ds = made("deception")
    assert ds.annotations.name == "deception_subjects.csv"
    mapping = pd.read_csv(ds.annotations)
    assert list(mapping.columns) == ["clip", "subject"]
    assert dict(zip(mapping["clip"], mapping["subject"])) == {c.clip: c.subject for c in ds.clips}
    assert Counter(c.emotion for c in ds.clips) == {"deceptive": 3, "truthful": 3}
    for c in ds.clips:
        folder, prefix = (
            ("Deceptive", "trial_lie_")
            if c.emotion == "deceptive"
            else ("Truthful", "trial_truth_")
        )
        assert c.media == ds.root / "Clips" / folder / f"{c.clip}.mp4"
        assert c.clip.startswith(prefix) and c.label3 is None
        vr = decord.VideoReader(str(c.media))
        assert len(vr) == 8 and vr[0].shape == (H, W, 3)
        assert 0 <= c.onset < c.apex <= c.offset <= 7
    bare = write_dataset(tmp_path / "bare", "deception", mapping=False, **SMALL)
    assert bare.annotations is None and not list(bare.root.parent.glob("*.csv"))


def test_videos_layout(made):
    import decord

    ds = made("videos")
    df = pd.read_excel(ds.annotations, sheet_name="Sheet1")
    assert list(df.columns) == ["Subject", "Filename", "Action Units", "Estimated Emotion"]
    assert df["Filename"].is_unique and len(df) == 6
    by_name = {c.clip: c for c in ds.clips}
    for _, row in df.iterrows():
        c = by_name[row.Filename]
        assert c.media == ds.root / c.label3 / f"{row.Filename}.mp4" and c.subject == row.Subject
        vr = decord.VideoReader(str(c.media))
        assert len(vr) == 8 and vr[0].shape == (H, W, 3)


@pytest.mark.parametrize("layout", with_synthetic_layout())
def test_landmarks_cover_every_frame(made, layout):
    ds = made(layout)
    for media in dict.fromkeys(c.media for c in ds.clips):
        path = landmark_path(media)
        assert path == media.with_name(media.name + ".landmarks.npy")
        lm = np.load(path)
        n = len(folder_frames(media)) if media.is_dir() else 8
        assert lm.dtype == np.float32 and lm.shape == (n, 68, 2)
        assert (lm[..., 0] > 0).all() and (lm[..., 0] < W - 1).all()
        assert (lm[..., 1] > 0).all() and (lm[..., 1] < H - 1).all()


def _motion(lm: np.ndarray, a: int, b: int, idx: list[int]) -> np.ndarray:
    """Displacement between frames a and b of points idx, head drift (point 27) removed."""
    d = lm[b] - lm[a] - (lm[b, 27] - lm[a, 27])
    return np.linalg.norm(d[idx], axis=1)


def test_au_motion_moves_only_its_region(tmp_path):
    ds = write_dataset(tmp_path / "d", "casme2", subjects=3, clips=3, frames=12, size=128, others=0)
    brows, corners = list(range(17, 27)), [48, 54]
    seen = set()
    for c in ds.clips:
        lm = np.load(landmark_path(c.media))
        first = frame_number(folder_frames(c.media)[0])
        on, ap = c.onset - first, c.apex - first
        if c.label3 == "positive":
            assert 1.0 <= _motion(lm, on, ap, corners).max() <= 3.0
            assert _motion(lm, on, ap, brows).max() < 0.3
        if c.label3 == "surprise":
            assert 1.0 <= _motion(lm, on, ap, brows).max() <= 3.0
            assert _motion(lm, on, ap, list(range(48, 68))).max() < 0.3
        seen.add(c.label3)
    assert seen == {"negative", "positive", "surprise"}


@pytest.mark.parametrize(
    ("aus", "region"),
    [
        ("12", range(48, 68)),
        ("1+2", range(17, 27)),
        ("4+L10", list(range(17, 27)) + list(range(48, 68))),
    ],
)
def test_pixels_follow_the_landmarks(aus, region):
    """With drift, blinks, flicker and noise held fixed, an AU changes pixels only near the
    landmarks it moves."""
    subject = Subject.sample(np.random.default_rng(3), 128, 170)
    plans = [SequencePlan(9, [Expression(a, 1, 4, 7)], [Blink(5, 6, 7, 0.9)], 0.4, (5,))
             for a in (aus, "")]  # fmt: skip
    (moved, lm), (still, lm0) = (render_sequence(subject, p) for p in plans)
    assert np.array_equal(lm[:, 27], lm0[:, 27])  # same head drift in both
    diff = np.abs(moved[4].astype(int) - still[4]).max(axis=2)
    assert diff.max() > 40  # clearly visible at apex
    (x0, y0), (x1, y1) = (
        np.floor(lm[4, list(region)].min(0)) - 4,
        np.ceil(lm[4, list(region)].max(0)) + 4,
    )
    outside = diff.copy()
    outside[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = 0
    assert outside.max() <= 2  # only rounding elsewhere
    assert np.array_equal(moved[0], still[0])  # before onset nothing differs


def test_canonical_shape_is_a_mirror_symmetric_face():
    s = canonical_shape()
    assert s.shape == (68, 2)
    assert np.allclose(s[MIRROR, 0], -s[:, 0]) and np.allclose(s[MIRROR, 1], s[:, 1])
    assert s[8, 1] == s[:17, 1].max()  # chin lowest jaw point
    assert s[17:27, 1].max() < s[36:48, 1].min() < s[30, 1] < s[48:68, 1].min()  # brows>eyes>nose
    assert s[36:42, 0].max() < 0 < s[42:48, 0].min()  # right eye on the image left
    assert [(t.au, t.side) for t in parse_aus("4+L10")] == [(4, "both"), (10, "L")]
    assert [(t.au, t.side) for t in parse_aus("R1+R2")] == [(1, "R"), (2, "R")]
    assert parse_aus("?") == []


def test_labels_balanced_round_robin():
    seqs = plan_layout("casme2", subjects=6, clips=9, frames=8, seed=0, others=0)
    labels = Counter(c.label for s in seqs for c in s.clips)
    assert labels == {"negative": 18, "positive": 18, "surprise": 18}
    for si in range(6):
        per = Counter(c.label for s in seqs if s.subject_index == si for c in s.clips)
        assert per == {"negative": 3, "positive": 3, "surprise": 3}


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("layout", ["casme2", "samm", "deception"])
def test_same_seed_same_bytes(tmp_path, layout):
    a = write_dataset(tmp_path / "a", layout, **SMALL)
    b = write_dataset(tmp_path / "b", layout, **SMALL)
    c = write_dataset(tmp_path / "c", layout, **SMALL, seed=1)
    ha, hb, hc = _hashes(tmp_path / "a"), _hashes(tmp_path / "b"), _hashes(tmp_path / "c")
    assert ha == hb and len(ha) > 10
    media = [k for k in ha if k.endswith((".jpg", ".mp4"))]
    assert media and all(hc.get(k) != ha[k] for k in media)
    assert [replace(x, media=x.media.relative_to(tmp_path / "a")) for x in a.clips] == [
        replace(x, media=x.media.relative_to(tmp_path / "b")) for x in b.clips
    ]
    assert c.clips != a.clips


def test_ensure_dataset_reuses_refuses_and_replaces(tmp_path):
    out = tmp_path / "ds"
    first = ensure_dataset(out, "casme2", **SMALL)
    marker = out / ".mer-synthetic.json"
    stamp = marker.stat().st_mtime_ns
    again = ensure_dataset(out, "casme2", **SMALL)
    assert again == first and marker.stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match=r"other parameters \(seed: 0 there, 1 asked\)"):
        ensure_dataset(out, "casme2", **{**SMALL, "seed": 1})
    # write_dataset replaces a synthetic dataset ...
    other = write_dataset(out, "casme2", **{**SMALL, "seed": 1})
    assert other.clips != first.clips and ensure_dataset(out, "casme2", **{**SMALL, "seed": 1})
    # ... but never writes into a folder that is not one.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty and holds no synthetic dataset"):
        write_dataset(foreign, "casme2", **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".*writing*"))


def test_unknown_layout_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("synthetic layout 'casme4'")) as exc:
        write_dataset(tmp_path / "x", "casme4")
    assert str(exc.value).endswith("(did you mean 'casme3'?)")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("layout", "kw", "message"),
    [
        ("casme2", {"frames": 1}, "data.synthetic.frames: expected a value in [2, inf], got 1"),
        ("casme2", {"size": 16}, "data.synthetic.size: expected a value in [32, inf], got 16"),
        ("videos", {"size": 65}, "data.synthetic.size: 65 is odd; layout videos writes H.264"),
        ("videos", {"size": 65}, "even frame height"),
        ("smic", {"others": 1}, "data.synthetic.others: layout smic has no clips outside"),
        ("casme2", {"others": 4, "clips": 4}, "data.synthetic.others: 4 of the 4 clips"),
        ("casme2", {"clips": 1000}, "data.synthetic.clips: expected a value in [1, 999]"),
        ("casme2", {"seed": -1}, "data.synthetic.seed: expected a value in [0, inf], got -1"),
        (
            "casme2",
            {"intensity": -1.0},
            "data.synthetic.intensity: expected a value in [0.0, inf], got -1.0",
        ),
        ("casme2", {"framing": "tight"}, "data.synthetic.framing: expected one of 'scene'"),
    ],
)
def test_bad_parameters_raise_config_error(tmp_path, layout, kw, message):
    """The generator's parameters are checked once, by SyntheticConfig: `data.synthetic` of a
    sweep, and `mer synth` before it writes anything."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        SyntheticConfig(layout=layout, **kw)
    if "framing" in kw:
        return  # argparse's choices refuse it first
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    flags = [f"--{k}={v}" for k, v in kw.items()]
    args = parser.parse_args(["synth", str(tmp_path / "x"), "--layout", layout, *flags])
    with pytest.raises(ConfigError, match=re.escape(message)):
        args.func(args)
    assert not (tmp_path / "x").exists()


def test_synth_checks_every_part_of_a_composite(tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["synth", str(tmp_path / "m"), "--layout", "megc2019", "--others=1"])
    with pytest.raises(ConfigError, match=re.escape("layout smic has no clips outside")):
        args.func(args)
    assert not (tmp_path / "m").exists()


def test_face_framing_fills_square_frames_and_zooms_the_motion(tmp_path):
    """`face` framing (CASME II Cropped): square frames, the face from brows to chin inside the
    frame and larger than in `scene` framing, AU motion zoomed with it; the scene default keeps
    its parameters (no framing key, so older markers still match)."""
    kw = dict(subjects=1, clips=3, frames=8, size=64, seed=1)
    scene = write_dataset(tmp_path / "scene", "casme2", **kw)
    face = write_dataset(tmp_path / "face", "casme2", framing="face", **kw)
    img = Image.open(sorted(face.clips[0].media.glob("*.jpg"))[0])
    assert img.size == (64, 64)
    assert ensure_dataset(tmp_path / "face", "casme2", framing="face", **kw) == face
    with pytest.raises(DataError, match="framing: None there, 'face' asked"):
        ensure_dataset(tmp_path / "scene", "casme2", framing="face", **kw)
    lm_s, lm_f = (np.load(c.landmarks) for c in (scene.clips[0], face.clips[0]))
    inner = lm_f[:, 17:68]  # brows, eyes, nose, mouth inside; the jaw may touch the edges
    assert inner.min() >= 0 and inner.max() <= 63 and lm_f[:, 8, 1].max() <= 63  # chin
    assert lm_f[:, :17].min() > -2 and lm_f[:, :17].max() < 65
    width = lm_f[0, 16, 0] - lm_f[0, 0, 0]
    assert width / (lm_s[0, 16, 0] - lm_s[0, 0, 0]) == pytest.approx(1.5, rel=0.02)
    assert width > 0.8 * 64
    rel_s, rel_f = (lm - lm[:, 27:28] for lm in (lm_s, lm_f))  # motion relative to the nose
    move_s, move_f = (np.abs(r - r[0]).max() for r in (rel_s, rel_f))
    assert move_f == pytest.approx(1.5 * move_s, rel=0.05)


def test_megc2019_composite(tmp_path):
    megc = write_megc2019(tmp_path / "megc", subjects=2, clips=4, frames=6, size=64)
    raw = megc.gt.read_bytes()
    assert raw.endswith(b"\r\n") and b"dataset" not in raw
    gt = pd.read_csv(
        megc.gt, header=None, names=["dataset", "subject", "filename", "label"], dtype=str
    )
    assert list(dict.fromkeys(gt["dataset"])) == ["casme2", "smic", "samm"]
    assert set(gt[gt.dataset == "samm"]["subject"]) == {"6", "7"}
    assert set(gt[gt.dataset == "smic"]["subject"]) == {"s01", "s02"}
    assert set(gt[gt.dataset == "casme2"]["subject"]) == {"sub01", "sub02"}
    labelled = {(n, c.subject, c.clip): c for n, ds in megc.parts.items() for c in ds.clips
                if c.label3}  # fmt: skip
    assert len(gt) == len(labelled) == 2 * 2 * 3 + 2 * 4  # casme2 and samm drop one "others"
    for _, row in gt.iterrows():
        subject, clip = row.subject, row.filename
        if row.dataset == "samm":  # official list: 6 for folder 006
            subject = f"{int(subject):03d}"
        if row.dataset == "smic":  # official list pads SMIC: s01, s01_ne_01 for s1/.../s1_ne_01
            subject = f"s{int(subject[1:])}"
            clip = re.sub(r"^s0*(\d+)_", r"s\1_", clip)
        c = labelled.pop((row.dataset, subject, clip))
        assert int(row.label) == ["negative", "positive", "surprise"].index(c.label3)
        assert c.media.is_dir()
    assert not labelled
    assert ensure_megc2019(tmp_path / "megc", subjects=2, clips=4, frames=6, size=64) == megc


def test_synth_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "synth",
            str(tmp_path / "out"),
            "--layout",
            "samm",
            "--subjects",
            "2",
            "--clips",
            "2",
            "--frames",
            "4",
            "--size",
            "32",
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "wrote samm: 2 subjects, 4 clips" in text and "16 frames of 32x42" in text
    assert str(tmp_path / "out" / "SAMM_Micro_FACS_Codes_v2.xlsx") in text
    args = parser.parse_args(
        ["synth", str(tmp_path / "face"), "--frames", "4", "--size", "32", "--framing", "face"]
    )
    assert args.func(args) == 0
    assert "frames of 32x32" in capsys.readouterr().out


@pytest.mark.skipif(not REAL.is_dir(), reason=MISSING)
def test_headers_match_the_real_workbooks(made):
    """Sheet names, header rows and column names are those of the distributed files."""
    real = REAL / "CASME2-coding-20140508.xlsx"
    if not real.is_file():
        pytest.skip(MISSING)
    ours = made("casme2").annotations
    assert sheet_names(ours) == sheet_names(real)
    r, o = pd.read_excel(real, sheet_name="Sheet1"), pd.read_excel(ours, sheet_name="Sheet1")
    assert list(r.columns) == list(o.columns)
    for col in ("Subject", "Filename", "OnsetFrame", "OffsetFrame", "Estimated Emotion"):
        assert r[col].dtype == o[col].dtype, col
    real = REAL / "SAMM_Micro_FACS_Codes_v2.xlsx"
    if real.is_file():
        ours = made("samm").annotations
        assert sheet_names(ours) == sheet_names(real)
        r = pd.read_excel(real, sheet_name="MICRO_ONLY", header=13)
        o = pd.read_excel(ours, sheet_name="MICRO_ONLY", header=13)
        assert list(r.columns) == list(o.columns) == SAMM_COLUMNS
        assert r["Subject"].dtype == o["Subject"].dtype
