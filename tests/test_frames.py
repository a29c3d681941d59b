from __future__ import annotations

import numpy as np
import pytest

from mer.data.frames import METHODS, NEEDS_WINDOW, motion_scores, select_frames, stretch
from mer.errors import DataError


def _clip(levels: list[int], h: int = 4, w: int = 5) -> np.ndarray:
    """Grey clip whose frame i is flat at levels[i]: |diff to next| = 20 * |Δlevel|."""
    return np.stack([np.full((h, w), v, dtype=np.uint8) for v in levels])


def test_motion_scores_sum_abs_diff_to_next_last_is_lowest() -> None:
    clip = _clip([0, 10, 10, 40, 35])
    np.testing.assert_array_equal(motion_scores(clip), [200, 0, 600, 100, -1])


def test_motion_scores_rgb_uses_grey() -> None:
    rgb = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    rgb[1, ..., 0] = 255  # pure red → grey 76
    np.testing.assert_array_equal(motion_scores(rgb), [76 * 4, -1])


def test_motion_topk_keeps_time_order() -> None:
    #          diffs to next: 5   0  30  10  25   0   -
    clip = _clip([0, 5, 5, 35, 45, 20, 20])
    np.testing.assert_array_equal(select_frames(clip, 3, "motion_topk"), [2, 3, 4])
    np.testing.assert_array_equal(select_frames(clip, 4, "motion_topk"), [0, 2, 3, 4])


def test_motion_topk_ties_go_to_earlier_frames() -> None:
    clip = _clip([0, 10, 20, 30, 40, 50])  # every diff equal
    np.testing.assert_array_equal(select_frames(clip, 3, "motion_topk"), [0, 1, 2])


def test_motion_topk_last_frame_only_when_all_needed() -> None:
    clip = _clip([0, 0, 0, 0])  # all scores 0, last -1
    np.testing.assert_array_equal(select_frames(clip, 3, "motion_topk"), [0, 1, 2])
    np.testing.assert_array_equal(select_frames(clip, 4, "motion_topk"), [0, 1, 2, 3])


def test_uniform_includes_both_ends() -> None:
    np.testing.assert_array_equal(select_frames(10, 4, "uniform"), [0, 3, 6, 9])
    np.testing.assert_array_equal(select_frames(11, 3, "uniform"), [0, 5, 10])
    # linspace(0, 6, 5) = 0, 1.5, 3, 4.5, 6 → half rounds up
    np.testing.assert_array_equal(select_frames(7, 5, "uniform"), [0, 2, 3, 5, 6])
    np.testing.assert_array_equal(select_frames(5, 1, "uniform"), [0])
    np.testing.assert_array_equal(select_frames(5, 5, "uniform"), [0, 1, 2, 3, 4])


def test_first() -> None:
    np.testing.assert_array_equal(select_frames(_clip([0] * 9), 4, "first"), [0, 1, 2, 3])


@pytest.mark.parametrize("method", ["motion_topk", "uniform", "first"])
def test_short_clips_are_stretched_in_time_order(method: str) -> None:
    clip = _clip([0, 50, 100])
    np.testing.assert_array_equal(select_frames(clip, 8, method), [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(select_frames(clip[:1], 3, method), [0, 0, 0])


def test_stretch_repeats_each_frame_evenly() -> None:
    idx = stretch(4, 10)
    assert np.all(np.diff(idx) >= 0)
    assert sorted(np.bincount(idx).tolist()) == [2, 2, 3, 3]


def test_onset_apex_offset_window_with_apex_forced() -> None:
    # window 2..12 (11 frames), 4 picks: 2, 5.33→5, 8.67→9, 12; apex 7 replaces the nearest
    # (5 and 9 are both 2 away: the earlier wins) → 2, 7, 9, 12
    idx = select_frames(20, 4, "onset_apex_offset", onset_idx=2, apex_idx=7, offset_idx=12)
    np.testing.assert_array_equal(idx, [2, 7, 9, 12])
    idx = select_frames(20, 4, "onset_apex_offset", onset_idx=2, apex_idx=9, offset_idx=12)
    np.testing.assert_array_equal(idx, [2, 5, 9, 12])  # already included


def test_onset_apex_offset_short_window_and_defaults() -> None:
    idx = select_frames(20, 5, "onset_apex_offset", onset_idx=4, apex_idx=5, offset_idx=6)
    np.testing.assert_array_equal(idx, [4, 4, 5, 5, 6])
    # unknown onset/offset: clip start/end
    idx = select_frames(9, 3, "onset_apex_offset", apex_idx=None)
    np.testing.assert_array_equal(idx, [0, 4, 8])


def test_onset_apex_offset_apex_outside_window_not_forced(caplog: pytest.LogCaptureFixture) -> None:
    idx = select_frames(20, 3, "onset_apex_offset", onset_idx=0, apex_idx=15, offset_idx=10)
    np.testing.assert_array_equal(idx, [0, 5, 10])
    assert "outside onset..offset" in caplog.text


def test_onset_apex_offset_bad_window_is_data_error() -> None:
    with pytest.raises(DataError, match="not a window"):
        select_frames(10, 3, "onset_apex_offset", onset_idx=6, offset_idx=4)
    with pytest.raises(DataError, match="not a window"):
        select_frames(10, 3, "onset_apex_offset", onset_idx=0, offset_idx=10)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown frame selection"):
        select_frames(5, 2, "random")
    with pytest.raises(ValueError, match="needs the frames"):
        select_frames(5, 2, "motion_topk")
    with pytest.raises(DataError, match="no frames"):
        select_frames(0, 2, "uniform")


def test_result_dtype_and_shape() -> None:
    idx = select_frames(_clip(list(range(0, 200, 7))), 30, "motion_topk")
    assert idx.dtype == np.int64 and idx.shape == (30,)
    assert np.all(np.diff(idx) >= 0)


@pytest.mark.parametrize("method", sorted(set(METHODS) - NEEDS_WINDOW))
def test_only_window_methods_read_onset_apex_offset(method: str) -> None:
    """NEEDS_WINDOW drives the missing-onset/offset warning: the other methods ignore them."""
    clip = _clip([0, 9, 3, 7, 1, 8, 2, 6, 4, 5])
    window = {"onset_idx": 3, "apex_idx": 4, "offset_idx": 6}
    np.testing.assert_array_equal(
        select_frames(clip, 4, method, **window), select_frames(clip, 4, method)
    )
    assert {"onset_apex_offset"} == NEEDS_WINDOW


def _textured(levels: list[int | None], seed: int = 0) -> np.ndarray:
    """Grey frames with structure (a random texture) shifted by levels[i]; None: a black frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(6, 8))
    frames = [np.zeros((6, 8)) if v is None else base + v for v in levels]
    return np.stack(frames).astype(np.uint8)


def test_blank_frames_are_never_chosen_by_motion_topk() -> None:
    from mer.data.frames import blank_mask

    # a black glitch frame at 3: the jumps into and out of it would be the largest motion
    clip = _textured([0, 5, 5, None, 45, 20, 20, 60])
    np.testing.assert_array_equal(blank_mask(clip), [0, 0, 0, 1, 0, 0, 0, 0])
    for count in (3, 5, 7):
        idx = select_frames(clip, count, "motion_topk")
        assert 3 not in idx and len(idx) == count and np.all(np.diff(idx) > 0)
    # scored without it: frame 2's next frame is 4 (|45 - 5| = 40 per pixel, the largest)
    np.testing.assert_array_equal(select_frames(clip, 1, "motion_topk"), [2])
    # fewer frames with structure than T: those are stretched, the blank one never used
    idx = select_frames(_textured([0, None, 30, None]), 4, "motion_topk")
    np.testing.assert_array_equal(idx, [0, 0, 2, 2])
    # a uniform title card is constant too; every frame constant: scored as before
    card = _textured([0, 10, 20])
    card[1] = 128
    assert 1 not in select_frames(card, 2, "motion_topk")
    np.testing.assert_array_equal(blank_mask(_clip([0, 50, 100])), [1, 1, 1])
    np.testing.assert_array_equal(select_frames(_clip([0, 50, 100]), 2, "motion_topk"), [0, 1])
