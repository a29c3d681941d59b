"""Choose a fixed number T of frames from a clip (positions into its time-ordered frame list).

Methods (`data.frames.select`):

- `motion_topk` (the original for CASME II and CAS(ME)^3): frame i scores the sum over pixels of
  |grey[i+1] - grey[i]| (grey = ITU-R 601 luma, `media.to_grey`; integer sums: exact). The last
  frame has no next frame and scores below every other frame, so it is chosen only when the clip
  has exactly T frames. The T best are kept in time order; ties go to the earlier frame.
  Blank or constant frames (`blank_mask`: a black glitch frame, a uniform title card) are never
  chosen: the jump into and out of one looks like motion, so they would be preferred. The
  scores are those of the clip without them (frame i's next frame is the next frame that is not
  blank); the prepare step counts the frames skipped (sample table `blank_skipped`). A clip
  whose every frame is constant has nothing else to choose: it is scored as it is (its face
  coverage, where measured, shows it). Fewer non-blank frames than T: those are stretched.
- `uniform` (the original for SAMM): round-half-up of linspace(0, n-1, T): both ends included.
- `first` (the original for SMIC): the first T frames.
- `onset_apex_offset`: the onset..offset window (inclusive) spread like `uniform`; the apex, when
  known and inside the window, replaces the nearest chosen index (time order is kept).

Every method looks at the frames of `data.frames.window` (`selection_window`: the annotated
onset..offset, or the whole media) after dropping `data.frames.skip` frames at its start.

A clip (or window) with fewer than T frames is stretched: position floor(j * n / T) for j < T, so
every frame appears, each ⌊T/n⌋ or ⌈T/n⌉ times, in time order. Never an error, but the prepare
step counts such clips in one WARNING (mer.data.checks.warn_repeated_frames).
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING

import numpy as np

from mer.datasets.media import to_grey
from mer.errors import DataError

if TYPE_CHECKING:
    from mer.config import DataConfig

log = logging.getLogger(__name__)

#: A frame whose grey levels have a standard deviation below this is blank or constant: no
#: structure beyond sensor noise (sigma about 2); real frames of the face media have 40-75.
BLANK_STD = 3.0

METHODS = ("motion_topk", "uniform", "first", "onset_apex_offset")
#: Methods that need the pixels of every frame (the others need only the frame count).
NEEDS_PIXELS = frozenset({"motion_topk"})
#: Methods that read the annotated onset/apex/offset (the others look at the whole clip); a clip
#: without them falls back to its start/end, which mer.data.checks counts in a WARNING.
NEEDS_WINDOW = frozenset({"onset_apex_offset"})


def selection_window(data_cfg: DataConfig) -> str:
    """`annotated` (select inside onset..offset) or `clip` (the whole media): data.frames.window
    with `auto` resolved; `onset_apex_offset` is always annotated. `auto` is annotated where a
    recording holds several annotated expressions (`DatasetSpec.shared_media`): selection must
    stay inside each one's onset..offset, or they would all get the same frames."""
    f = data_cfg.frames
    if f.select in NEEDS_WINDOW or f.window == "annotated":
        return "annotated"
    if f.window == "clip":
        return "clip"
    return "annotated" if data_cfg.spec.shared_media else "clip"


def stretch(n: int, count: int) -> np.ndarray:
    """`count` positions over `n` frames (n < count): each frame repeated evenly, in order."""
    return (np.arange(count, dtype=np.int64) * n) // count


def _spread(n: int, count: int) -> np.ndarray:
    """`count` positions spread evenly over 0..n-1, both ends included (n >= count)."""
    if count == 1:
        return np.zeros(1, dtype=np.int64)
    return np.floor(np.linspace(0.0, n - 1, count) + 0.5).astype(np.int64)


def blank_mask(frames: np.ndarray) -> np.ndarray:
    """(F,) bool: frames (RGB or grey) whose grey standard deviation is below BLANK_STD."""
    grey = to_grey(np.asarray(frames))
    flat = grey.reshape(len(grey), -1)
    return np.array([float(f.std()) < BLANK_STD for f in flat], dtype=bool)


def motion_scores(frames: np.ndarray) -> np.ndarray:
    """Per-frame score: sum |grey[i+1] - grey[i]|; the last frame gets -1 (below any real score)."""
    grey = to_grey(frames)
    n = grey.shape[0]
    scores = np.full(n, -1, dtype=np.int64)
    for i in range(n - 1):  # pair by pair: small temporaries
        diff = np.abs(grey[i + 1].astype(np.int16) - grey[i].astype(np.int16))
        scores[i] = diff.sum(dtype=np.int64)
    return scores


def select_frames(
    frames: np.ndarray | int,
    count: int,
    method: str,
    *,
    onset_idx: int | None = None,
    apex_idx: int | None = None,
    offset_idx: int | None = None,
) -> np.ndarray:
    """Positions (count,) int64 of the chosen frames, in time order.

    `frames`: (F, H, W, 3) RGB or (F, H, W) grey, or just the frame count F for methods that do
    not look at pixels. `onset_idx`/`apex_idx`/`offset_idx` are positions (not frame numbers),
    used by `onset_apex_offset` only; an unknown onset/offset means the clip's start/end.
    """
    if method not in METHODS:
        raise ValueError(f"unknown frame selection {method!r}; expected one of {METHODS}")
    if count < 1:
        raise ValueError(f"frame count must be >= 1, got {count}")
    if isinstance(frames, (int, np.integer)):
        if method in NEEDS_PIXELS:
            raise ValueError(f"{method} needs the frames, not only their count")
        n = int(frames)
    else:
        n = int(np.asarray(frames).shape[0])
    if n < 1:
        raise DataError("clip has no frames to select from")

    if method == "onset_apex_offset":
        return _window(n, count, onset_idx, apex_idx, offset_idx)
    if n < count:
        return stretch(n, count)
    if method == "first":
        return np.arange(count, dtype=np.int64)
    if method == "uniform":
        return _spread(n, count)
    grey = to_grey(np.asarray(frames))
    valid = np.flatnonzero(~blank_mask(grey))
    if valid.size in (0, n):  # nothing to skip, or nothing else to choose (see the module doc)
        return _top_motion(grey, count)
    if valid.size < count:
        return valid[stretch(valid.size, count)]
    return valid[_top_motion(grey[valid], count)]


def _top_motion(grey: np.ndarray, count: int) -> np.ndarray:
    scores = motion_scores(grey)
    order = np.lexsort((np.arange(len(grey)), -scores))  # by score descending, then earlier first
    return np.sort(order[:count]).astype(np.int64)


def _window(
    n: int, count: int, onset: int | None, apex: int | None, offset: int | None
) -> np.ndarray:
    lo = 0 if onset is None else int(onset)
    hi = n - 1 if offset is None else int(offset)
    if not (0 <= lo <= hi < n):
        raise DataError(
            f"onset/offset positions {onset}..{offset} are not a window inside the clip's "
            f"{n} frames"
        )
    width = hi - lo + 1
    idx = lo + (stretch(width, count) if width < count else _spread(width, count))
    if apex is not None:
        apex = int(apex)
        if not lo <= apex <= hi:
            log.warning("apex position %d outside onset..offset %d..%d: not forced", apex, lo, hi)
        elif apex not in idx:
            nearest = int(np.argmin(np.abs(idx - apex)))  # ties: the earlier index
            idx[nearest] = apex
    return idx


class MotionStream:
    """`motion_topk` over frames seen one at a time, each decoded once (mer prepare, issue 19.7).

    Gives exactly `select_frames(all frames, count, "motion_topk")` while holding at most about
    2·count+2 frames (the best so far and the one whose score waits for the next frame), not the
    whole clip: a long video is decoded in one pass and the chosen frames are kept from it. `n`,
    the number of frames that will be fed, must be known (the selection window). Feed each frame
    with `add(rgb)`; `result()` returns (positions (count,), the chosen frames in that order, the
    number of blank frames seen). Ties go to the earlier frame, as in `select_frames`.
    """

    def __init__(self, n: int, count: int):
        if n < 1:
            raise DataError("clip has no frames to select from")
        if count < 1:
            raise ValueError(f"frame count must be >= 1, got {count}")
        self.n, self.count = n, count
        self._seen = 0
        self._blank = 0
        self._short: list[np.ndarray] = []  # n < count: every frame is used (stretched)
        # over the frames that are not blank (the usual case), and over all frames while every
        # frame so far is blank (a clip of constant frames is scored as it is)
        self._valid = _TopK(count)
        self._all: _TopK | None = _TopK(count)

    def add(self, frame: np.ndarray) -> None:
        i = self._seen
        if i >= self.n:
            raise ValueError(f"MotionStream: more than the {self.n} frames announced")
        self._seen += 1
        if self.n < self.count:
            self._short.append(frame)
            self._blank += bool(blank_mask(frame[None])[0])
            return
        grey = to_grey(frame[None])[0]
        blank = float(grey.std()) < BLANK_STD
        self._blank += blank
        if self._all is not None:
            if not blank:
                self._all = None  # a frame with structure: the all-blank case is excluded
            else:
                self._all.push(i, grey, frame)
        if not blank:
            self._valid.push(i, grey, frame)

    def result(self) -> tuple[np.ndarray, np.ndarray, int]:
        if self._seen != self.n:
            raise ValueError(f"MotionStream: {self._seen} frames fed, {self.n} announced")
        if self.n < self.count:
            idx = stretch(self.n, self.count)
            return idx, np.stack([self._short[i] for i in idx.tolist()]), self._blank
        n_valid = self.n - self._blank
        if n_valid == 0:
            assert self._all is not None
            chosen = self._all.finish()
        elif 0 < n_valid < self.count:
            kept = self._valid.finish()  # every valid frame: fewer than count, none evicted
            chosen = [kept[i] for i in stretch(n_valid, self.count).tolist()]
        else:
            chosen = self._valid.finish()
        idx = np.asarray([c[0] for c in chosen], dtype=np.int64)
        return idx, np.stack([c[1] for c in chosen]), self._blank


class _TopK:
    """The `count` best (score, earlier first) of a sequence whose score is |next - this|."""

    def __init__(self, count: int):
        self.count = count
        self._heap: list[tuple[int, int, np.ndarray]] = []  # (score, -index, frame): min first
        self._pending: tuple[int, np.ndarray, np.ndarray] | None = None  # index, grey, frame

    def push(self, i: int, grey: np.ndarray, frame: np.ndarray) -> None:
        if self._pending is not None:
            j, prev, kept = self._pending
            score = int(np.abs(grey.astype(np.int16) - prev.astype(np.int16)).sum(dtype=np.int64))
            self._offer(score, j, kept)
        self._pending = (i, grey, frame)

    def _offer(self, score: int, i: int, frame: np.ndarray) -> None:
        item = (score, -i, frame)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:  # higher score, or same score and earlier
            heapq.heapreplace(self._heap, item)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """(index, frame) of the chosen frames in time order; the last frame scores -1."""
        if self._pending is not None:
            j, _, kept = self._pending
            self._offer(-1, j, kept)
            self._pending = None
        return sorted(((-neg, frame) for _, neg, frame in self._heap), key=lambda c: c[0])
