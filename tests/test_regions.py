from __future__ import annotations

import numpy as np
import pytest

from mer.data.regions import (
    REGION_LANDMARKS,
    crop,
    fraction_box,
    global_frames,
    landmark_box,
    oracle_region,
    pad_square,
    region_frames,
    resize,
)
from mer.datasets.facs import AU_CODE


def _coord_frame(h: int = 60, w: int = 80) -> np.ndarray:
    """Pixel (y, x) holds (x, y, 7): a crop's corners tell exactly where it came from."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = np.arange(w)[None, :]
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = 7
    return img


@pytest.mark.parametrize(
    ("aus", "region"),
    [
        ([4, 12], "eyes"),  # eyes come first even when mouth AUs are present
        ([12, 4], "eyes"),  # region priority, not AU order
        ([43], "eyes"),
        ([14, 1], "mouth"),
        ([1, 2], "eyebrows"),
        ([9], "cheeks"),
        ([], "face"),
        ([25, 26], "face"),  # not in AU_CODE
        (None, "face"),
    ],
)
def test_oracle_region_priority(aus: list[int] | None, region: str) -> None:
    assert oracle_region(aus, AU_CODE) == region


def test_oracle_region_respects_au_codes() -> None:
    assert oracle_region([4, 12], [12]) == "mouth"
    assert oracle_region([4], []) == "face"


def test_region_landmark_indices_are_the_originals() -> None:
    assert REGION_LANDMARKS["eyes"] == (19, 24, 15, 1)
    assert REGION_LANDMARKS["mouth"] == (3, 5, 11, 13)
    assert REGION_LANDMARKS["eyebrows"] == (17, 19, 24, 26)
    assert REGION_LANDMARKS["cheeks"] == (1, 29, 15, 3, 13)
    assert REGION_LANDMARKS["face"] == tuple(range(68))


def test_landmark_box_inclusive_margin_and_clamp() -> None:
    pts = np.array([[10, 20], [30, 25], [12.4, 40.6]], dtype=np.float32)
    assert landmark_box(pts, 80, 60) == (10, 20, 31, 42)  # ceil(40.6)=41 inclusive → 42
    assert landmark_box(pts[:2], 80, 60, margin=0.5) == (0, 17, 41, 29)  # ±10 x, ±2.5 y
    assert landmark_box(pts, 20, 30) == (10, 20, 20, 30)  # clamped to the image
    far = np.array([[100, 100], [120, 130]], dtype=np.float32)
    assert landmark_box(far, 80, 60) == (79, 59, 80, 60)  # outside: one edge pixel


def test_crop_corners_match_landmarks_exactly() -> None:
    frame = _coord_frame()
    pts = np.array([[11, 5], [40, 33], [25, 20]], dtype=np.float32)
    box = landmark_box(pts, 80, 60)
    out = crop(frame, box, box[3] - box[1], box[2] - box[0])  # same size: no resampling
    assert tuple(out[0, 0, :2]) == (11, 5)
    assert tuple(out[-1, -1, :2]) == (40, 33)
    assert out.shape == (29, 30, 3)


def test_keep_aspect_pads_centred_square() -> None:
    patch = np.full((2, 4, 3), 9, dtype=np.uint8)
    sq = pad_square(patch)
    assert sq.shape == (4, 4, 3)
    assert (sq[1:3] == 9).all() and (sq[0] == 0).all() and (sq[3] == 0).all()
    frame = _coord_frame()
    out = crop(frame, (0, 0, 8, 4), 8, 8, keep_aspect=True)
    assert (out[:2] == 0).all() and (out[6:] == 0).all()
    np.testing.assert_array_equal(out[2:6], frame[0:4, 0:8])


def test_resize_is_deterministic_pil_bilinear() -> None:
    frame = _coord_frame()
    a, b = resize(frame, 16, 16), resize(frame, 16, 16)
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a[0, 0, 0] < a[0, -1, 0] and a[0, 0, 1] < a[-1, 0, 1]  # orientation kept
    np.testing.assert_array_equal(resize(frame, 60, 80), frame)


def test_global_frames_whole_frame_aspect_not_kept() -> None:
    frames = np.stack([_coord_frame(), _coord_frame()])
    out = global_frames(frames, 20)
    assert out.shape == (2, 20, 20, 3)
    np.testing.assert_array_equal(out[0], resize(frames[0], 20, 20))


def _face_points(offset: float = 0.0) -> np.ndarray:
    """68 points on a 60x80 frame with known region boxes (only region indices matter)."""
    pts = np.full((68, 2), 40.0, dtype=np.float32)
    pts[:, 1] = 30
    pts[[1, 15], :] = [[10 + offset, 24], [70 + offset, 24]]  # jaw at eye height
    pts[[19, 24], :] = [[25 + offset, 10], [55 + offset, 10]]  # brow tops
    pts[[17, 26], :] = [[15 + offset, 14], [65 + offset, 14]]  # brow ends
    pts[[3, 13], :] = [[14 + offset, 38], [66 + offset, 38]]
    pts[[5, 11], :] = [[22 + offset, 52], [58 + offset, 52]]
    pts[29] = [40 + offset, 34]
    return pts


def test_au_oracle_crops_per_frame_landmarks() -> None:
    frames = np.stack([_coord_frame(), _coord_frame()])
    lm = np.stack([_face_points(0), _face_points(2)])
    out = region_frames(frames, lm, "au_oracle", 16, region="eyes")
    assert out.shape == (2, 16, 16, 3)
    for t in range(2):
        box = landmark_box(lm[t][[19, 24, 15, 1]], 80, 60)
        assert box == (10 + 2 * t, 10, 71 + 2 * t, 25)
        np.testing.assert_array_equal(out[t], crop(frames[t], box, 16, 16))
    mouth = region_frames(frames[:1], lm[:1], "au_oracle", 16, region="mouth", margin=0.1)
    box = landmark_box(lm[0][[3, 5, 11, 13]], 80, 60, 0.1)
    assert box == (8, 36, 73, 55)
    np.testing.assert_array_equal(mouth[0], crop(frames[0], box, 16, 16))


def test_all_policy_is_a_2x2_mosaic() -> None:
    frame = _coord_frame()
    lm = _face_points()[None]
    out = region_frames(frame[None], lm, "all", 17)  # odd size: cells 8 and 9
    assert out.shape == (1, 17, 17, 3)
    cells = {
        "eyebrows": (slice(0, 8), slice(0, 8)),
        "eyes": (slice(0, 8), slice(8, 17)),
        "cheeks": (slice(8, 17), slice(0, 8)),
        "mouth": (slice(8, 17), slice(8, 17)),
    }
    for name, (rows, cols) in cells.items():
        box = landmark_box(lm[0][list(REGION_LANDMARKS[name])], 80, 60)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        np.testing.assert_array_equal(out[0][rows, cols], crop(frame, box, h, w), err_msg=name)


def test_fixed_policy_uses_frame_fractions_only() -> None:
    frame = _coord_frame()
    out = region_frames(frame[None], None, "fixed", 20)
    assert fraction_box((0.15, 0.50, 0.10, 0.90), 80, 60) == (8, 9, 72, 30)
    assert fraction_box((0.55, 0.90, 0.25, 0.75), 80, 60) == (20, 33, 60, 54)
    np.testing.assert_array_equal(out[0, :10], crop(frame, (8, 9, 72, 30), 10, 20))
    np.testing.assert_array_equal(out[0, 10:], crop(frame, (20, 33, 60, 54), 10, 20))


def test_no_face_falls_back_to_the_whole_frame() -> None:
    frames = _coord_frame()[None]
    for policy in ("au_oracle", "all"):
        np.testing.assert_array_equal(
            region_frames(frames, None, policy, 12, region="mouth"), global_frames(frames, 12)
        )
    with pytest.raises(ValueError, match="no region input"):
        region_frames(frames, None, "none", 12)
