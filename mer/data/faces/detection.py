"""Landmark providers: 68 iBUG points per selected frame, from dlib or from annotation files.

- `dlib`: dlib's HOG frontal face detector + the 68-point shape predictor shipped in the
  `face_recognition_models` package (`pip install 'mer[landmarks]'`). Each distinct frame is
  searched once (`detector.run(img, upsample, 0.0)`: dlib's own threshold); detections scoring
  below `min_score` are rejected (counted); then one face is chosen per frame, by following one
  face through the clip (`track`, mer.data.faces.tracking.follow) or, as the original did, the
  most confident (then largest) box of each frame. The predictor runs in the chosen box.
- `annotated`: ground-truth landmarks stored beside the media by the synthetic generator
  (`mer.datasets.synthetic.landmark_path(media)`: float32 (n_frames, 68, 2), sorted frame order).

Measured on the real media (README, data section): true faces score 0.83-2.6 (1.2 and up for the
subject of a talking-face video, grey, darkened, halved, blurred or rolled 30 degrees), false
detections at most 0.12 (a suit, at upsample 1) and the no-face video nothing above 0. Hence the
default `data.faces.min_score` 0.5.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mer.data.faces.tracking import Detection, Track, follow, most_confident
from mer.datasets.synthetic import landmark_path
from mer.errors import DataError

N_POINTS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install 'mer[landmarks]'"


@dataclass
class FaceDetections:
    """One clip's landmarks at its selected frames and what the detector saw doing it."""

    points: np.ndarray  # (T, 68, 2) float32, NaN where no (tracked) face
    rejected: int = 0  # detections below min_score, over the clip's distinct frames
    off_track: int = 0  # distinct frames whose detections all lay off the tracked face

    @property
    def found(self) -> np.ndarray:
        """(T,) bool: frames with landmarks."""
        return ~np.isnan(self.points).reshape(len(self.points), -1).any(axis=1)


class LandmarkProvider(Protocol):
    name: str

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        """(T, 68, 2) float32 for frames (T, H, W, 3) at `positions` of `path`; NaN: no face."""
        ...


def detect_clip(
    provider: LandmarkProvider, frames: np.ndarray, *, path: Path, positions: np.ndarray
) -> FaceDetections:
    """Landmarks and detector counts of one clip, from any provider."""
    own = getattr(provider, "detect_clip", None)
    if own is not None:
        return own(frames, path=Path(path), positions=np.asarray(positions))
    return FaceDetections(provider(frames, path=Path(path), positions=np.asarray(positions)))


# --------------------------------------------------------------------------------------- dlib
def predictor_path() -> Path:
    """Where face_recognition_models keeps the 68-point predictor (without importing it: its
    __init__ needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"dlib landmarks need the face_recognition_models package: {INSTALL_HINT}"
        )
    for base in spec.submodule_search_locations:
        path = Path(base) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise DataError(
        f"{PREDICTOR_FILE} not found in face_recognition_models "
        f"({', '.join(spec.submodule_search_locations)}); reinstall it: {INSTALL_HINT}"
    )


_DLIB: dict[str, object] = {}


def _dlib_models() -> tuple[object, object]:
    """Detector and predictor, loaded once per process (the predictor file is ~100 MB)."""
    if not _DLIB:
        try:
            import dlib  # lazy: optional dependency (pip install mer[landmarks])
        except ImportError as exc:
            raise ImportError(f"dlib landmarks need dlib: {INSTALL_HINT}") from exc
        path = predictor_path()
        _DLIB["detector"] = dlib.get_frontal_face_detector()
        _DLIB["predictor"] = dlib.shape_predictor(str(path))
    return _DLIB["detector"], _DLIB["predictor"]


def best_face(rects: list, scores: list[float]) -> int | None:
    """Index of the most confident detection; equal scores → the largest box, then the first."""
    if not rects:
        return None
    keys = [(float(s), r.width() * r.height(), -i) for i, (r, s) in enumerate(zip(rects, scores))]
    return -max(keys)[2]


class DlibLandmarks:
    """dlib landmarks; `min_score` 0 and `track` False are the original's choices."""

    name = "dlib"

    def __init__(self, upsample: int = 1, min_score: float = 0.0, track: bool = False) -> None:
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.track = bool(track)
        self.detector, self.predictor = _dlib_models()

    def detections(self, frame: np.ndarray) -> tuple[list[Detection], list, int]:
        """Detections at or above min_score (and their dlib rectangles) in one RGB frame, and
        how many scored below it."""
        img = np.ascontiguousarray(frame, dtype=np.uint8)
        rects, scores, _ = self.detector.run(img, self.upsample, 0.0)  # type: ignore[attr-defined]
        kept = [(r, float(s)) for r, s in zip(rects, scores) if float(s) >= self.min_score]
        dets = [Detection((r.left(), r.top(), r.right() + 1, r.bottom() + 1), s) for r, s in kept]
        return dets, [r for r, _ in kept], len(rects) - len(kept)

    def _shape(self, frame: np.ndarray, rect: object) -> np.ndarray:
        img = np.ascontiguousarray(frame, dtype=np.uint8)
        shape = self.predictor(img, rect)  # type: ignore[operator]
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 landmarks of the most confident face in one frame, or None."""
        dets, rects, _ = self.detections(frame)
        track = most_confident([dets])
        pick = track.chosen[0]
        return None if pick is None else self._shape(frame, rects[pick])

    def detect_clip(
        self, frames: np.ndarray, *, path: Path, positions: np.ndarray
    ) -> FaceDetections:
        """Search each distinct position once (a short clip stretched to T repeats frames),
        choose one face per frame (tracked or most confident), landmarks in its box."""
        pos = np.asarray(positions).tolist()
        distinct = sorted(set(pos))
        first = {p: pos.index(p) for p in distinct}
        found = [self.detections(frames[first[p]]) for p in distinct]
        per_frame = [dets for dets, _, _ in found]
        track: Track = follow(per_frame) if self.track else most_confident(per_frame)
        shapes: dict[int, np.ndarray] = {}
        for p, (_, rects, _), pick in zip(distinct, found, track.chosen, strict=True):
            if pick is not None:
                shapes[p] = self._shape(frames[first[p]], rects[pick])
        out = np.full((len(frames), N_POINTS, 2), np.nan, dtype=np.float32)
        for t, p in enumerate(pos):
            if p in shapes:
                out[t] = shapes[p]
        rejected = sum(n for _, _, n in found)
        return FaceDetections(out, rejected=rejected, off_track=track.off_track)

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        return self.detect_clip(frames, path=path, positions=positions).points


# ---------------------------------------------------------------------------------- annotated
class AnnotatedLandmarks:
    """Ground-truth landmarks written by the synthetic generator next to each clip."""

    name = "annotated"

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        file = Path(landmark_path(Path(path)))
        if not file.is_file():
            raise DataError(
                f"{file}: landmark file not found for clip {path} (data.regions.landmarks: "
                "annotated needs the generator's .landmarks.npy files; use dlib for real data)"
            )
        try:
            points = np.load(file)
        except (OSError, ValueError) as exc:
            # numpy's message for a damaged file suggests allow_pickle, which is no remedy here
            why = "not a numeric .npy file" if "allow_pickle" in str(exc) else str(exc)
            raise DataError(
                f"{file}: cannot read landmarks ({why}); expected a .npy array of shape "
                "(frames, 68, 2): regenerate the dataset (mer synth) or use data.regions.landmarks "
                "dlib"
            ) from None
        if points.ndim != 3 or points.shape[1:] != (N_POINTS, 2):
            raise DataError(f"{file}: expected landmarks (frames, 68, 2), got {points.shape}")
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and positions.max() >= len(points):
            raise DataError(
                f"{file}: has {len(points)} frames of landmarks, clip {path} needs frame "
                f"position {int(positions.max())}"
            )
        return points[positions].astype(np.float32)


def get_provider(
    name: str, *, upsample: int = 1, min_score: float = 0.0, track: bool = False
) -> LandmarkProvider | None:
    """The provider for `data.regions.landmarks` (None for `none`); `min_score` and `track`
    are dlib's (the defaults are the original's)."""
    if name == "dlib":
        return DlibLandmarks(upsample, min_score=min_score, track=track)
    if name == "annotated":
        return AnnotatedLandmarks()
    if name == "none":
        return None
    raise ValueError(f"unknown landmark provider {name!r}")
