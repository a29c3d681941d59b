"""Follow one face across a clip's frames, given each frame's face detections.

Per frame, the detector may return several boxes (the subject, a face in the background, a false
detection on a shirt or a poster) or none (face turned away, hidden, out of the picture). Picking
the most confident box frame by frame lets a false detection win whenever the true face is missed
or scores lower; following one face avoids that:

1. anchor: the detection that overlaps a detection in the most frames of the clip (the face
   present throughout), ties to the higher score, then the earlier frame;
2. from the anchor, walk forward and then backward through the frames; in each, the detections
   overlapping the last tracked box (IoU >= OVERLAP) continue the track, the most overlapping
   first (ties: higher score, then first). A frame whose detections all lie elsewhere has no
   tracked face: those detections are off the track (counted, never used), and the track
   continues from its last box.

OVERLAP 0.3 tolerates a shift of about half the box width between two selected frames, far
more than a head moves in a micro-expression clip, while a detection elsewhere in the picture
(another face, a shirt) overlaps the face box far less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OVERLAP = 0.3

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 (exclusive), pixels


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


@dataclass(frozen=True)
class Track:
    """The tracked detection's index per frame (None: no tracked face there) and how many
    frames had only detections off the track."""

    chosen: list[int | None]
    off_track: int


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _anchor(frames: Sequence[Sequence[Detection]]) -> tuple[int, int] | None:
    best: tuple[tuple[int, float, int], tuple[int, int]] | None = None
    for f, dets in enumerate(frames):
        for i, d in enumerate(dets):
            support = 1 + sum(
                any(iou(d.box, e.box) >= OVERLAP for e in other)
                for g, other in enumerate(frames)
                if g != f
            )
            key = (support, d.score, -f)
            if best is None or key > best[0]:
                best = (key, (f, i))
    return None if best is None else best[1]


def _continue(dets: Sequence[Detection], last: Box) -> int | None:
    scored = [(iou(d.box, last), d.score, -i) for i, d in enumerate(dets)]
    fits = [s for s in scored if s[0] >= OVERLAP]
    return -max(fits)[2] if fits else None


def follow(frames: Sequence[Sequence[Detection]]) -> Track:
    """The track through `frames` (each a list of detections); see the module doc."""
    chosen: list[int | None] = [None] * len(frames)
    start = _anchor(frames)
    if start is None:
        return Track(chosen, 0)
    f0, i0 = start
    chosen[f0] = i0
    off = 0
    for order in (range(f0 + 1, len(frames)), range(f0 - 1, -1, -1)):
        last = frames[f0][i0].box
        for f in order:
            if not frames[f]:
                continue
            pick = _continue(frames[f], last)
            if pick is None:
                off += 1
                continue
            chosen[f] = pick
            last = frames[f][pick].box
    return Track(chosen, off)


def most_confident(frames: Sequence[Sequence[Detection]]) -> Track:
    """The original choice, frame by frame: the most confident detection, then the largest box,
    then the first (no tracking, nothing off the track)."""
    chosen: list[int | None] = []
    for dets in frames:
        keys = [
            (d.score, (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]), -i) for i, d in enumerate(dets)
        ]
        chosen.append(-max(keys)[2] if keys else None)
    return Track(chosen, 0)
