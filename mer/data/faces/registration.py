"""Registration: the landmarks a clip's crops are cut with, per frame or once per clip.

`per_frame` (the original) cuts every frame with its own landmarks. dlib's landmarks move by a
pixel or more from frame to frame on a still face, and a crop that follows them puts that motion
into the crops, on the scale of a micro-expression (bench/RESULTS.md, "Faces"). `per_clip` cuts
every frame with one set of landmarks per clip, the per-coordinate median over the clip's
distinct frames with a face: crop boxes are identical across the clip, so the only motion left
in them is the face's own (and the head's, which micro-expression recordings keep still).

`auto` (the default of `data.faces.boxes`): per_clip for detected landmarks (dlib), per_frame for
exact ones (`annotated`: the synthetic generator's ground truth has no jitter, and following it
frame by frame also removes the synthetic head drift, as the original intended).
"""

from __future__ import annotations

import numpy as np

BOX_MODES = ("per_frame", "per_clip")


def resolve_boxes(boxes: str, landmarks: str) -> str:
    """`data.faces.boxes` with `auto` resolved for the landmark provider."""
    if boxes == "auto":
        return "per_clip" if landmarks == "dlib" else "per_frame"
    if boxes not in BOX_MODES:
        raise ValueError(f"unknown box mode {boxes!r}; expected auto or one of {BOX_MODES}")
    return boxes


def reference_landmarks(points: np.ndarray, positions: np.ndarray) -> np.ndarray | None:
    """(68, 2) median over the distinct positions with landmarks of (T, 68, 2) `points` (NaN
    where no face); None when no frame has a face."""
    found = ~np.isnan(points).reshape(len(points), -1).any(axis=1)
    seen: set[int] = set()
    rows = []
    for t in np.flatnonzero(found).tolist():
        pos = int(positions[t])
        if pos not in seen:  # a stretched clip repeats frames: each counts once
            seen.add(pos)
            rows.append(points[t])
    if not rows:
        return None
    return np.median(np.stack(rows), axis=0).astype(np.float32)


def crop_landmarks(
    points: np.ndarray, filled: np.ndarray | None, positions: np.ndarray, mode: str
) -> np.ndarray | None:
    """The (T, 68, 2) landmarks crops are cut with: the gap-filled per-frame landmarks
    (`per_frame`), or the clip's reference landmarks at every frame (`per_clip`); None when the
    clip has no face."""
    if filled is None:
        return None
    if mode == "per_frame":
        return filled
    ref = reference_landmarks(points, positions)
    if ref is None:
        return None
    return np.broadcast_to(ref, points.shape).copy()
