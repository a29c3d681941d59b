"""Face coverage of a clip: which selected frames show the (tracked) face, and the gaps filled.

A selected frame without a face takes the landmarks of the nearest frame that has one (ties: the
earlier frame), so that per-frame crops stay on the face when the detector misses it for a frame.
When the face is really absent (the clip runs into titles, sky, another shot), those frames are
background whatever box they get, and the clip must not train silently under its label: the
coverage (frames with a face / frames selected) and the longest run of filled frames are part of
the sample table, the cache manifest, plan.json and the report, and `data.faces.min_coverage`
with `on_low_coverage` decides what happens to a clip below it (mer.data.cache). A clip with no
face at all that is kept follows `data.regions.no_face` (`clip_landmarks`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer.data.faces.detection import FaceDetections, LandmarkProvider, detect_clip
from mer.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Coverage:
    """Face coverage of one clip's T selected frames."""

    frames: int  # selected frames with a face
    selected: int  # T
    filled_run: int  # longest run of consecutive selected frames without a face

    @property
    def fraction(self) -> float:
        return self.frames / self.selected if self.selected else 0.0

    @classmethod
    def of(cls, found: np.ndarray) -> Coverage:
        found = np.asarray(found, dtype=bool)
        run = best = 0
        for f in found.tolist():
            run = 0 if f else run + 1
            best = max(best, run)
        return cls(int(found.sum()), int(found.size), best)


def fill_missing(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames without landmarks (any NaN) take the nearest frame's (ties: earlier).

    Returns (filled points, found mask (T,) bool). With no face at all, points are returned as is.
    """
    found = ~np.isnan(points).reshape(len(points), -1).any(axis=1)
    if found.all() or not found.any():
        return points, found
    have = np.flatnonzero(found)
    out = points.copy()
    for t in np.flatnonzero(~found):
        out[t] = points[have[np.argmin(np.abs(have - t))]]  # argmin: first = earlier on ties
    return out, found


def no_face_fallback(path: Path | str, n_frames: int, no_face: str) -> None:
    """A kept clip without any face: DataError (`no_face: error`) or a WARNING (whole frame)."""
    msg = f"{path}: no face found in any of the {n_frames} selected frames"
    if no_face == "error":
        raise DataError(
            msg + " (set data.regions.no_face: whole_frame to use the whole frame instead, or "
            "data.faces.on_low_coverage: exclude to leave such clips out)"
        )
    log.warning("%s; using the whole frame (data.regions.no_face: whole_frame)", msg)


def clip_landmarks(
    provider: LandmarkProvider,
    frames: np.ndarray,
    *,
    path: Path,
    positions: np.ndarray,
    no_face: str = "error",
) -> tuple[np.ndarray | None, int]:
    """Landmarks (T, 68, 2) for the selected frames with gaps filled, and how many frames had a
    face. None when no frame has one and `no_face` is `whole_frame` (the caller uses the frame)."""
    det: FaceDetections = detect_clip(provider, frames, path=Path(path), positions=positions)
    filled, found = fill_missing(det.points)
    n_found = int(found.sum())
    if n_found == 0:
        no_face_fallback(path, len(frames), no_face)
        return None, 0
    if n_found < len(frames):
        log.debug(
            "%s: %d of %d frames without a face, filled from the nearest",
            path,
            len(frames) - n_found,
            len(frames),
        )
    return filled, n_found
