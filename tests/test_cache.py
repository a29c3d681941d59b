from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from mer.config import DataConfig, FramesConfig, RegionsConfig, SyntheticConfig
from mer.data import cache as cache_mod
from mer.data import cache_cli, checks, clips, regions
from mer.data.cache import (
    PreparedData,
    load_prepared,
    load_samples_only,
    prepare_data,
)
from mer.data.clips import window_positions
from mer.data.frames import select_frames
from mer.datasets import media
from mer.datasets.catalog.megc2019 import write_megc2019
from mer.datasets.facs import AU_CODE
from mer.errors import ConfigError, DataError

synthetic = pytest.importorskip("mer.datasets.synthetic")

LABELS = {"smic": "folder3", "videos": "folder3", "deception": "deception2", "casme3": "casme3_3"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated casme2 dataset for the tests that only read it."""
    out = tmp_path_factory.mktemp("synthetic") / "casme2"
    synthetic.ensure_dataset(out, "casme2", subjects=2, clips=3, frames=8, size=64)
    return out


def _copy(shared: Path, tmp: Path) -> Path:
    """A private copy of the shared dataset, for tests that damage or touch files."""
    return Path(shutil.copytree(shared, tmp / "own"))


def _cfg(tmp: Path, layout: str = "casme2", root: Path | None = None, **kw) -> DataConfig:
    """Tiny synthetic data: 2 subjects × 3 clips × 8 frames × 64 px, T=6 at 32 px."""
    regions_kw = {"landmarks": "annotated", "policy": "au_oracle"} | kw.pop("regions", {})
    return DataConfig(
        dataset="synthetic",
        synthetic=SyntheticConfig(layout=layout, subjects=2, clips=3, frames=8, size=64),
        labels=kw.pop("labels", LABELS.get(layout, "megc3")),
        frames=FramesConfig(**({"count": 6, "select": "motion_topk"} | kw.pop("frames", {}))),
        size=kw.pop("size", 32),
        regions=RegionsConfig(**regions_kw),
        cache_dir=kw.pop("cache_dir", str(tmp / "cache")),
        root=None if root is None else str(root),
        **kw,
    )


def _gt(path: str, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames and ground-truth landmarks of a clip at the given frame numbers."""
    clip = media.open_clip(path)
    pos = clip.positions_of(numbers)
    points = np.load(synthetic.landmark_path(Path(path)))[pos]
    return clip.read(pos), points


def _frame_numbers(data: PreparedData) -> np.ndarray:
    assert data.path is not None
    return np.load(data.path / "frame_numbers.npy")


@pytest.mark.parametrize("layout", ["casme2", "samm", "casme3", "videos"])
def test_every_layout_au_oracle_crops_match_ground_truth(tmp_path: Path, layout: str) -> None:
    cfg = _cfg(tmp_path, layout)
    data = prepare_data(cfg, progress=False)
    n = len(data.samples)
    assert n == 6 and data.oracle_input
    assert data.global_clips.shape == (n, 6, 32, 32, 3) and data.global_clips.dtype == np.uint8
    assert data.region_clips is not None and data.region_clips.shape == (n, 6, 32, 32, 3)
    assert list(data.samples.index) == list(range(n))
    assert data.samples["oracle_input"].all()
    numbers = _frame_numbers(data)
    for i, row in data.samples.iterrows():
        region = regions.oracle_region(row["aus"], AU_CODE)
        assert row["region"] == region and row["face_frames"] == 6
        frames, points = _gt(row["path"], numbers[i])
        np.testing.assert_array_equal(data.global_clips[i], regions.global_frames(frames, 32))
        for t in range(6):  # each frame cropped with its own ground-truth landmarks
            box = regions.landmark_box(
                points[t][list(regions.REGION_LANDMARKS[region])], frames.shape[2], frames.shape[1]
            )
            np.testing.assert_array_equal(
                data.region_clips[i, t], regions.crop(frames[t], box, 32, 32), err_msg=f"{i},{t}"
            )
        grey = media.to_grey(media.read_clip(row["path"]))
        source = media.open_clip(row["path"])
        lo, hi = 0, len(source) - 1
        if layout == "casme3":  # a task's recording: select inside this clip's onset..offset
            lo, _, hi = window_positions(source.numbers, row["onset"], None, row["offset"])
            if (data.samples["path"] == row["path"]).sum() > 1:  # one of several in it
                assert hi - lo + 1 < len(source)
        pos = source.positions_of(numbers[i])
        np.testing.assert_array_equal(pos, lo + select_frames(grey[lo : hi + 1], 6, "motion_topk"))


@pytest.mark.parametrize("layout", ["smic", "deception"])
def test_au_oracle_without_any_au_annotation_is_config_error(tmp_path: Path, layout: str) -> None:
    cfg = _cfg(tmp_path, layout)
    message = (
        rf"data.regions.policy: au_oracle needs AU annotations, and none of the 6 clips of "
        rf"synthetic \(layout {layout}\) has one: .*\[oracle regions\]\. Use policy all .* or fixed"
    )
    with pytest.raises(ConfigError, match=message):
        prepare_data(cfg, progress=False)
    with pytest.raises(ConfigError, match=message):
        load_samples_only(cfg)  # a dry run finds it too
    assert not list((tmp_path / "cache").glob("*/manifest.json"))  # refused before decoding
    data = prepare_data(_cfg(tmp_path, layout, regions={"policy": "all"}), progress=False)
    assert set(data.samples["region"]) == {"all"} and not data.oracle_input


def _set_cells(xlsx: Path, values: dict[tuple[int, str], object]) -> list[str]:
    """Overwrite cells of a synthetic CASME II sheet, {(row, header): value} (None blanks a
    cell); returns the sample ids of the rows touched."""
    wb = openpyxl.load_workbook(xlsx)
    ws = wb["Sheet1"]
    header = [c.value for c in ws[1]]
    ids = []
    for (row, name), value in values.items():
        ws.cell(row=row, column=header.index(name) + 1).value = value  # value=None is a no-op
        subject, clip = ws.cell(row=row, column=1).value, ws.cell(row=row, column=2).value
        ids.append(f"casme2/sub{int(subject):02d}/{clip}")
    wb.save(xlsx)
    return ids


def _warnings(caplog: pytest.LogCaptureFixture, logger: str, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == logger and r.levelno == logging.WARNING and r.getMessage().startswith(start)
    ]


def test_au_oracle_clips_without_aus_get_the_face_with_a_warning(
    tmp_path: Path, shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = _copy(shared, tmp_path)
    (sid,) = _set_cells(own / "CASME2-coding-20140508.xlsx", {(3, "Action Units"): "?"})
    with caplog.at_level(logging.WARNING):
        data = prepare_data(_cfg(tmp_path, root=own), progress=False)
    assert data.oracle_input
    regions_by_id = dict(zip(data.samples["sample_id"], data.samples["region"], strict=True))
    assert regions_by_id[sid] == "face"
    assert _warnings(caplog, "mer.data.checks", "data.regions.policy") == [
        f"data.regions.policy au_oracle: 1 of 6 clips have no AU annotation (casme2 1; first: "
        f"{sid}); their branch-B region is the whole face"
    ]


def test_onset_apex_offset_without_onset_falls_back_with_warnings(
    tmp_path: Path, shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = _copy(shared, tmp_path)
    xlsx = own / "CASME2-coding-20140508.xlsx"
    no_onset, no_apex = _set_cells(xlsx, {(2, "OnsetFrame"): None, (4, "ApexFrame"): None})
    cfg = _cfg(
        tmp_path,
        root=own,
        frames={"select": "onset_apex_offset", "count": 4},
        regions={"policy": "none"},
    )
    with caplog.at_level(logging.WARNING):
        samples, _ = load_samples_only(cfg)
    start = "data.frames.select onset_apex_offset inside the annotated window"
    dry = _warnings(caplog, "mer.data.checks", start)
    assert dry == [
        f"{start}: 2 of 6 clips lack an annotated onset (1: the window starts at the clip's first "
        "frame), offset (0: it ends at the last frame) or apex (1: no frame forced) (casme2 2; "
        f"first: {', '.join(sorted([no_onset, no_apex]))})"
    ]
    assert _warnings(caplog, "mer.datasets.records", str(xlsx)) == [
        f"{xlsx}, sheet 'Sheet1': 2 blank frame cell(s) read as unknown (NA): OnsetFrame on "
        "row 2; ApexFrame on row 4"
    ]
    # selecting inside the window by another method: the apex is not needed
    inside = {"select": "uniform", "count": 4, "window": "annotated"}
    uniform = _cfg(tmp_path, root=own, frames=inside, regions={"policy": "none"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_samples_only(uniform)
    assert _warnings(caplog, "mer.data.checks", "data.frames.select uniform") == [
        "data.frames.select uniform inside the annotated window: 1 of 6 clips lack an annotated "
        "onset (1: the window starts at the clip's first frame) or offset (0: it ends at the last "
        f"frame) (casme2 1; first: {no_onset})"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        data = prepare_data(cfg, progress=False)
    assert _warnings(caplog, "mer.data.checks", start) == dry
    i = int(np.flatnonzero(data.samples["sample_id"] == no_onset)[0])
    first_frame = media.list_frames(Path(data.samples["path"][i]))[0][0]
    assert _frame_numbers(data)[i][0] == first_frame  # the window starts at the folder's start


def test_count_above_clip_length_warns_once_per_prepare(
    tmp_path: Path, shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(
        tmp_path, root=shared, frames={"count": 10, "select": "uniform"}, regions={"policy": "none"}
    )
    for _ in range(2):  # built, then reused: each prepare says it once
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            data = prepare_data(cfg, progress=False)
        (line,) = _warnings(caplog, "mer.data.checks", "data.frames.count")
        assert line.startswith(
            "data.frames.count: 6 of 6 clips have fewer than 10 frames, so frames are repeated "
            "to fill 10 (shortest: casme2/sub01/"
        )
        assert line.endswith(", 8 frames); lower data.frames.count to avoid it")
    assert data.path is not None
    manifest = json.loads((data.path / "manifest.json").read_text())
    assert manifest["counts"]["repeated_frames"] == 6
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_data(_cfg(tmp_path, root=shared, regions={"policy": "none"}), progress=False)
    assert not _warnings(caplog, "mer.data.checks", "data.frames.count")  # T=6 <= 8 frames


def test_repeated_frames_counts_distinct_numbers_in_the_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    numbers = np.array([[3, 4, 5, 6], [3, 3, 4, 4], [7, 7, 7, 7]])
    cfg = DataConfig(frames=FramesConfig(count=4, select="onset_apex_offset"))
    with caplog.at_level(logging.WARNING):
        n = checks.warn_repeated_frames(["a", "b", "c"], numbers, cfg)
    assert n == 2
    assert _warnings(caplog, "mer.data.checks", "data.frames.count") == [
        "data.frames.count: 2 of 3 clips have fewer than 4 frames in their onset..offset window, "
        "so frames are repeated to fill 4 (shortest: c, 1 frames); lower data.frames.count to "
        "avoid it"
    ]


def test_reuse_without_decoding_and_rebuild_on_changes(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _copy(shared, tmp_path)
    cfg = _cfg(tmp_path, root=own)
    first = prepare_data(cfg, progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("decoded a clip although the cache exists")

    with monkeypatch.context() as m:
        m.setattr(media.ClipSource, "read", boom)
        m.setattr(media.ClipSource, "read_grey", boom)
        again = prepare_data(cfg, progress=False)
    assert again.key == first.key and again.path == first.path
    assert isinstance(again.global_clips, np.memmap) and not again.global_clips.flags.writeable
    np.testing.assert_array_equal(again.global_clips, first.global_clips)
    pd.testing.assert_frame_equal(again.samples, first.samples)

    changed = prepare_data(_cfg(tmp_path, root=own, size=24), progress=False)
    assert changed.key != first.key and changed.global_clips.shape[2] == 24

    frame = next(iter(sorted(Path(first.samples["path"][0]).iterdir())))
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = prepare_data(cfg, progress=False)
    assert touched.key != first.key
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")) == \
        sorted([first.key, changed.key, touched.key])  # fmt: skip


def test_ignored_settings_do_not_change_the_key(tmp_path: Path, shared: Path) -> None:
    a = prepare_data(
        _cfg(tmp_path, root=shared, regions={"policy": "none", "margin": 0.0}), progress=False
    )
    b = prepare_data(
        _cfg(tmp_path, root=shared, regions={"policy": "none", "margin": 0.3, "landmarks": "dlib"}),
        progress=False,
    )
    assert a.key == b.key  # margin and landmarks mean nothing without crops
    c = prepare_data(
        _cfg(tmp_path, root=shared, regions={"policy": "none"}, cache_dir=str(tmp_path / "other")),
        progress=False,
    )
    assert c.key == a.key and c.path == tmp_path / "other" / a.key


def test_manifest_and_files(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(_cfg(tmp_path, root=shared), progress=False)
    assert data.path is not None
    names = {p.name for p in data.path.iterdir()}
    assert names == {
        "global.npy", "regions.npy", "frame_numbers.npy", "landmarks.npy", "samples.json",
        "manifest.json",
    }  # fmt: skip
    manifest = json.loads((data.path / "manifest.json").read_text())
    assert manifest["key"] == data.key and manifest["oracle_input"] is True
    assert manifest["counts"]["clips"] == 6 and manifest["arrays"]["global"] == [6, 6, 32, 32, 3]
    assert manifest["sources"]["files"] == 1 + 6 * 8 + 6  # workbook, frames, landmark files
    assert manifest["data"]["synthetic"]["layout"] == "casme2"
    assert {"numpy", "pandas", "av"} <= set(manifest["versions"])
    assert sum(manifest["counts"]["per_class"].values()) == 6
    lm = np.load(data.path / "landmarks.npy")
    assert lm.shape == (6, 6, 68, 2) and not np.isnan(lm).any()
    loaded = load_prepared(data.path)
    assert loaded.class_names == data.class_names == ["negative", "positive", "surprise"]


def test_samples_only_matches_prepared_rows(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, root=shared)
    samples, classes = load_samples_only(cfg)
    data = prepare_data(cfg, progress=False)
    assert classes == data.class_names
    cols = [c for c in samples.columns if c != "path"]
    pd.testing.assert_frame_equal(data.samples[cols], samples[cols])
    assert samples["path"].isna().all()
    assert str(data.samples["onset"].dtype) == "Int64" and data.samples["label"].dtype == np.int64
    assert isinstance(data.samples["aus"][0], list)


def test_policy_none_branch_b_is_global(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(_cfg(tmp_path, root=shared, regions={"policy": "none"}), progress=False)
    assert data.region_clips is None and data.branch_b is data.global_clips
    assert not data.oracle_input and set(data.samples["region"]) == {"global"}
    assert data.path is not None and not (data.path / "regions.npy").exists()


def test_policy_fixed_needs_no_landmarks(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(
        _cfg(tmp_path, root=shared, regions={"policy": "fixed", "landmarks": "none"}),
        progress=False,
    )
    assert not data.oracle_input and set(data.samples["region"]) == {"fixed"}
    assert data.region_clips is not None and (data.samples["face_frames"] == -1).all()
    numbers = _frame_numbers(data)
    frames, _ = _gt(data.samples["path"][0], numbers[0])
    np.testing.assert_array_equal(
        data.region_clips[0], regions.region_frames(frames, None, "fixed", 32)
    )


def test_policy_all_mosaic_from_ground_truth(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(_cfg(tmp_path, root=shared, regions={"policy": "all"}), progress=False)
    assert not data.oracle_input and set(data.samples["region"]) == {"all"}
    numbers = _frame_numbers(data)
    for i in (0, 5):
        frames, points = _gt(data.samples["path"][i], numbers[i])
        assert data.region_clips is not None
        np.testing.assert_array_equal(
            data.region_clips[i], regions.region_frames(frames, points, "all", 32)
        )
        mouth = regions.landmark_box(
            points[0][list(regions.REGION_LANDMARKS["mouth"])], frames.shape[2], frames.shape[1]
        )
        np.testing.assert_array_equal(
            data.region_clips[i, 0, 16:, 16:], regions.crop(frames[0], mouth, 16, 16)
        )


def test_onset_apex_offset_uses_annotated_window(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(
        tmp_path,
        root=shared,
        frames={"select": "onset_apex_offset", "count": 4},
        regions={"policy": "none"},
    )
    data = prepare_data(cfg, progress=False)
    numbers = _frame_numbers(data)
    for i, row in data.samples.iterrows():
        got = numbers[i]
        assert row["onset"] <= got.min() and got.max() <= row["offset"]
        assert got[0] == row["onset"] and got[-1] == row["offset"] and row["apex"] in got
        assert np.all(np.diff(got) >= 0)


def test_recording_with_several_expressions_selects_inside_each_window(tmp_path: Path) -> None:
    """CAS(ME)^3 keeps a task's recording in one folder with several micro-expressions in it:
    each clip's frames come from its own onset..offset (window auto → annotated), never the
    same frames for every clip of the folder."""
    cfg = _cfg(
        tmp_path, "casme3", frames={"count": 4, "select": "uniform"}, regions={"policy": "none"}
    )
    data = prepare_data(cfg, progress=False)
    numbers = _frame_numbers(data)
    shared_folders = data.samples.groupby("path").filter(lambda g: len(g) > 1)
    assert len(shared_folders) >= 2
    for i, row in data.samples.iterrows():
        assert row["onset"] <= numbers[i].min() and numbers[i].max() <= row["offset"]
        # uniform inside the window: both ends included
        assert numbers[i][0] == row["onset"] and numbers[i][-1] == row["offset"]
    for _, group in shared_folders.groupby("path"):
        a, b = (numbers[i] for i in group.index[:2])
        assert not np.array_equal(a, b)
        assert not np.array_equal(
            data.global_clips[group.index[0]], data.global_clips[group.index[1]]
        )
    assert cache_mod.key_config(cfg)["frames"]["window"] == "annotated"


def test_whole_recording_selection_on_shared_media_is_refused(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path, "casme3", frames={"count": 4, "select": "motion_topk", "window": "clip"},
        regions={"policy": "none"},
    )  # fmt: skip
    with pytest.raises(ConfigError) as err:
        prepare_data(cfg, progress=False)
    msg = str(err.value)
    assert msg.startswith("data.frames.window:") and "identical frames" in msg
    assert "casme3/spNO.1/a/" in msg and "part_A/spNO.1/a" in msg
    # refused before decoding: only the generated dataset is there, no prepared arrays
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".locks", "synthetic"]


def test_two_clips_with_the_same_window_of_one_recording_are_refused() -> None:
    samples = pd.DataFrame(
        {
            "sample_id": ["casme3/spNO.1/a/3", "casme3/spNO.1/a/3b", "casme3/spNO.1/a/9"],
            "path": ["/d/spNO.1/a", "/d/spNO.1/a", "/d/spNO.1/a"],
            "onset": [3, 3, 9],
            "offset": [8, 8, 14],
        }
    )
    cfg = DataConfig(dataset="casme3")
    with pytest.raises(DataError) as err:
        checks.check_shared_media(samples, cfg)
    msg = str(err.value)
    assert msg.startswith("casme3/spNO.1/a/3, casme3/spNO.1/a/3b: 2 clips with the same onset 3")
    assert "/d/spNO.1/a" in msg and "/9" not in msg
    checks.check_shared_media(samples.iloc[[0, 2]], cfg)  # distinct windows: fine


def test_skip_drops_frames_at_the_start(tmp_path: Path, shared: Path) -> None:
    """deception's original input is frames 5-20: skip 5 then the first 16."""
    cfg = _cfg(tmp_path, root=shared, frames={"count": 3, "select": "first", "skip": 2},
               regions={"policy": "none"})  # fmt: skip
    data = prepare_data(cfg, progress=False)
    for i, row in data.samples.iterrows():
        listed = media.open_clip(row["path"]).numbers
        np.testing.assert_array_equal(_frame_numbers(data)[i], listed[2:5])
    assert cache_mod.key_config(cfg)["frames"]["skip"] == 2
    too_many = _cfg(tmp_path, root=shared, frames={"count": 3, "select": "first", "skip": 8},
                    regions={"policy": "none"})  # fmt: skip
    with pytest.raises(
        DataError,
        match=r"^casme2/\S+ \(\S+CASME2-coding-20140508.xlsx, sheet 'Sheet1', row \d+\): "
        r"data.frames.skip 8 drops all 8 frames of the clip",
    ):
        prepare_data(too_many, progress=False)


def test_window_settings_that_change_nothing_keep_the_cache_key(tmp_path: Path) -> None:
    """Caches built before data.frames.window/skip existed stay valid where they mean the same."""
    for layout, select in (
        ("casme2", "motion_topk"),
        ("samm", "uniform"),
        ("casme2", "onset_apex_offset"),
    ):
        cfg = _cfg(tmp_path, layout, frames={"select": select})
        assert set(cache_mod.key_config(cfg)["frames"]) == {"count", "select"}
        clip = _cfg(tmp_path, layout, frames={"select": select, "window": "clip", "skip": 0})
        assert cache_mod.key_config(clip) == cache_mod.key_config(cfg)
    annotated = _cfg(tmp_path, "casme2", frames={"window": "annotated"})
    assert cache_mod.key_config(annotated)["frames"]["window"] == "annotated"


def test_policy_needing_landmarks_without_provider_is_config_error(
    tmp_path: Path, shared: Path
) -> None:
    cfg = _cfg(tmp_path, root=shared, regions={"landmarks": "none"})
    with pytest.raises(ConfigError, match="au_oracle crops face regions and needs landmarks"):
        prepare_data(cfg, progress=False)
    with pytest.raises(ConfigError, match="needs landmarks"):
        load_samples_only(cfg)  # a dry run finds it too
    with pytest.raises(ConfigError, match="data.annotations: synthetic data writes its own"):
        load_samples_only(_cfg(tmp_path, root=shared, annotations="sheet.xlsx"))


def test_missing_landmark_file_names_sample_and_file(tmp_path: Path, shared: Path) -> None:
    own = _copy(shared, tmp_path)
    cfg = _cfg(tmp_path, root=own)
    assert cache_mod.synthetic_dir(cfg) == own
    victim = next(own.rglob("*.landmarks.npy"))
    victim.unlink()
    with pytest.raises(
        DataError, match=r"casme2/sub0\d/\w+ \([^)]*row \d+\): .*landmarks\.npy: landmark file not"
    ):
        prepare_data(cfg, progress=False)
    assert not [p for p in (tmp_path / "cache").iterdir() if ".building-" in p.name]


def test_truncated_frame_names_sample_and_file(tmp_path: Path, shared: Path) -> None:
    own = _copy(shared, tmp_path)
    cfg = _cfg(tmp_path, root=own)
    frame = sorted(own.rglob("img*.jpg"))[3]
    frame.write_bytes(frame.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"casme2/.*{frame.name}: cannot read image"):
        prepare_data(cfg, progress=False)


class _NoFace:
    name = "noface"

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        return np.full((len(frames), 68, 2), np.nan, dtype=np.float32)


def test_no_face_error_or_whole_frame(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clips, "provider", lambda settings: _NoFace())
    with pytest.raises(
        DataError, match=r"casme2/sub01/\w+ \([^)]*row \d+\): .*no face found in any of the 6"
    ):
        prepare_data(_cfg(tmp_path, root=shared), progress=False)
    data = prepare_data(
        _cfg(tmp_path, root=shared, regions={"no_face": "whole_frame"}), progress=False
    )
    assert set(data.samples["region"]) == {"frame"} and (data.samples["face_frames"] == 0).all()
    assert data.region_clips is not None
    np.testing.assert_array_equal(data.region_clips, data.global_clips)
    assert data.oracle_input  # still the au_oracle policy


def test_lost_race_uses_the_winner(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = cache_mod._build

    def build_and_lose(tmp: Path, data_cfg, samples, class_names, key, *rest) -> None:
        real_build(tmp, data_cfg, samples, class_names, key, *rest)
        shutil.copytree(tmp, tmp.parent / key)  # another process renamed its copy first
        (tmp.parent / key / "winner").write_text("")

    monkeypatch.setattr(cache_mod, "_build", build_and_lose)
    data = prepare_data(_cfg(tmp_path, root=shared), progress=False)
    assert data.path is not None and (data.path / "winner").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if ".building-" in p.name]


def test_incomplete_target_is_reported(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, root=shared)
    data = prepare_data(cfg, progress=False)
    assert data.path is not None
    (data.path / "manifest.json").unlink()
    with pytest.raises(DataError, match="incomplete cache folder"):
        prepare_data(cfg, progress=False)
    with pytest.raises(DataError, match="not a prepared-data folder"):
        load_prepared(data.path)


def test_two_workers_give_identical_arrays(tmp_path: Path, shared: Path) -> None:
    one = prepare_data(_cfg(tmp_path / "a", root=shared), progress=False)
    two = prepare_data(_cfg(tmp_path / "b", root=shared), progress=False, workers=2)
    np.testing.assert_array_equal(one.global_clips, two.global_clips)
    assert one.region_clips is not None and two.region_clips is not None
    np.testing.assert_array_equal(one.region_clips, two.region_clips)


def test_dlib_landmarks_on_synthetic_faces(tmp_path: Path, shared: Path) -> None:
    pytest.importorskip("dlib")
    data = prepare_data(_cfg(tmp_path, root=shared, regions={"landmarks": "dlib", "upsample": 1}),
                        progress=False)  # fmt: skip
    assert (data.samples["face_frames"] == 6).all()
    assert data.path is not None
    found = np.load(data.path / "landmarks.npy")
    numbers = _frame_numbers(data)
    for i in range(len(data.samples)):
        _, gt = _gt(data.samples["path"][i], numbers[i])
        assert np.abs(found[i] - gt).mean() < 4.0  # within a few pixels of the truth


def test_cli_prepares_each_distinct_data_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"""
name: t
data:
  dataset: synthetic
  synthetic: {{layout: casme2, subjects: 2, clips: 3, frames: 8, size: 64}}
  frames: {{count: 4}}
  size: 16
  regions: {{landmarks: annotated, policy: au_oracle}}
  cache_dir: {tmp_path / "cache"}
ablations:
  full: {{}}
  single: {{model.branches: single}}
  au_off: {{data.regions.policy: none}}
"""
    )
    parser = argparse.ArgumentParser()
    cache_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["prepare", str(sweep), "--set", "data.size=24", "--workers", "1"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2  # full and single share one data config
    assert all(" 6 clips " in line and "clips/s" in line for line in lines)
    assert "[oracle regions]" in lines[0] and "[oracle regions]" not in lines[1]
    assert load_prepared(lines[0].split()[0]).global_clips.shape[2] == 24
    assert args.func(args) == 0
    assert "reused" in capsys.readouterr().out


def test_megc2019_composite_from_sources(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mer.config import SourceConfig

    megc = write_megc2019(tmp_path / "megc", subjects=2, clips=3, frames=8, size=64)
    parts = megc.parts
    sources = {
        name: SourceConfig(
            root=str(parts[name].root),
            annotations=None if parts[name].annotations is None else str(parts[name].annotations),
        )
        for name in ("casme2", "samm", "smic")
    }
    cfg = DataConfig(
        dataset="megc2019",
        annotations=str(megc.gt),
        sources=sources,
        labels="megc3",
        frames=FramesConfig(count=4),
        size=16,
        regions=RegionsConfig(landmarks="annotated", policy="au_oracle"),
        cache_dir=str(tmp_path / "cache"),
    )
    with caplog.at_level(logging.WARNING):
        data = prepare_data(cfg, progress=False)
    assert set(data.samples["dataset"]) == {"casme2", "samm", "smic"}
    n_smic = int((data.samples["dataset"] == "smic").sum())
    (line,) = _warnings(caplog, "mer.data.checks", "data.regions.policy")
    assert line.startswith(  # SMIC has no AUs: its clips get the whole face, counted
        f"data.regions.policy au_oracle: {n_smic} of {len(data.samples)} clips have no AU "
        f"annotation (smic {n_smic}; first: smic/"
    )
    assert set(data.samples.loc[data.samples["dataset"] == "smic", "region"]) == {"face"}
    assert data.samples["sample_id"].is_monotonic_increasing
    numbers = _frame_numbers(data)
    for dataset in ("casme2", "samm", "smic"):
        i = int(np.flatnonzero(data.samples["dataset"] == dataset)[0])
        row = data.samples.iloc[i]
        frames, points = _gt(row["path"], numbers[i])
        assert data.region_clips is not None
        np.testing.assert_array_equal(
            data.region_clips[i],
            regions.region_frames(frames, points, "au_oracle", 16, region=row["region"]),
        )
    samples, classes = load_samples_only(cfg)
    assert list(samples["sample_id"]) == list(data.samples["sample_id"])
    samm_sheet = Path(sources["samm"].annotations)
    st = samm_sheet.stat()
    os.utime(samm_sheet, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert prepare_data(cfg, progress=False).key != data.key  # a part's sheet is a source


def test_stale_temporary_folder_is_removed(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, root=shared)
    key = prepare_data(cfg, progress=False).key
    shutil.rmtree(tmp_path / "cache" / key)
    stale = tmp_path / "cache" / f".{key}.building-dead"
    stale.mkdir()
    (stale / "global.npy").write_bytes(b"half written")
    assert prepare_data(cfg, progress=False).key == key
    assert not stale.exists()


def test_selection_span_window_skip_and_apex(caplog: pytest.LogCaptureFixture) -> None:
    settings = clips.ClipSettings(
        count=4, select="onset_apex_offset", size=32, policy="none", landmarks="none",
        upsample=0, margin=0.0, keep_aspect=False, no_face="error", au_codes=(),
        window="annotated",
    )  # fmt: skip
    numbers = list(range(1, 21))
    ok = clips.ClipJob("casme3/spNO.1/a/4", "/d", onset=4, apex=6, offset=9)
    assert clips.selection_span(ok, numbers, settings) == (3, 8, 2)  # apex relative to lo
    assert clips.selection_span(ok, numbers, replace(settings, skip=1)) == (4, 8, 1)
    with caplog.at_level(logging.WARNING, logger="mer.data.clips"):
        assert clips.selection_span(ok, numbers, replace(settings, skip=3)) == (6, 8, None)
    assert caplog.messages == [
        "casme3/spNO.1/a/4: apex frame 6 is among the data.frames.skip frames dropped before "
        "the frames 7..9 selected from: not forced"
    ]
    # another method does not use the apex
    assert clips.selection_span(ok, numbers, replace(settings, select="uniform")) == (3, 8, None)
    gapped = [1, 2, 5, 6]
    job = clips.ClipJob("casme3/spNO.1/a/3", "/d", onset=3, apex=None, offset=4)
    with pytest.raises(DataError, match=r"no frame numbered between onset 3 and offset 4 \(the "
                       r"clip has 4 frames, 1..6, with gaps\)"):  # fmt: skip
        clips.selection_span(job, gapped, settings)
