"""68-point facial landmarks (iBUG 300-W order, 0-based) for a clip's selected frames.

Providers (`data.regions.landmarks`):

- `dlib`: dlib's HOG frontal face detector + the 68-point shape predictor shipped in the
  `face_recognition_models` package (install with `pip install 'mer[landmarks]'`). Per frame,
  `detector.run(img, upsample, 0.0)` (dlib's default threshold): of several faces the most
  confident wins, then the largest box; the predictor runs in that box.
- `annotated`: ground-truth landmarks stored beside the media by the synthetic generator
  (`mer.datasets.synthetic.landmark_path(media)`: float32 (n_frames, 68, 2), sorted frame order).
- `none`: no landmarks (region policies `fixed` and `none` need none).

Landmarks are (x, y) pixel coordinates, float32 (T, 68, 2). A selected frame without a face takes
the landmarks of the nearest frame that has one (ties: the earlier frame); a clip without any face
follows `data.regions.no_face` (`clip_landmarks`).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from mer.errors import DataError

log = logging.getLogger(__name__)

N_POINTS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install 'mer[landmarks]'"


class LandmarkProvider(Protocol):
    name: str

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        """(T, 68, 2) float32 for frames (T, H, W, 3) at `positions` of `path`; NaN: no face."""
        ...


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
            import dlib
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
    name = "dlib"

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = int(upsample)
        self.detector, self.predictor = _dlib_models()

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 landmarks of the chosen face in one RGB frame, or None."""
        img = np.ascontiguousarray(frame, dtype=np.uint8)
        rects, scores, _ = self.detector.run(img, self.upsample, 0.0)  # type: ignore[attr-defined]
        best = best_face(list(rects), list(scores))
        if best is None:
            return None
        shape = self.predictor(img, rects[best])  # type: ignore[operator]
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        """Detect once per distinct position (a short clip stretched to T repeats frames)."""
        out = np.full((len(frames), N_POINTS, 2), np.nan, dtype=np.float32)
        done: dict[int, np.ndarray | None] = {}
        for t, (frame, pos) in enumerate(zip(frames, np.asarray(positions).tolist())):
            if pos not in done:
                done[pos] = self.detect(frame)
            if done[pos] is not None:
                out[t] = done[pos]
        return out


# ---------------------------------------------------------------------------------- annotated
class AnnotatedLandmarks:
    """Ground-truth landmarks written by the synthetic generator next to each clip."""

    name = "annotated"

    def __call__(self, frames: np.ndarray, *, path: Path, positions: np.ndarray) -> np.ndarray:
        from mer.datasets.synthetic import landmark_path

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


def get_provider(name: str, *, upsample: int = 1) -> LandmarkProvider | None:
    """The provider for `data.regions.landmarks` (None for `none`)."""
    if name == "dlib":
        return DlibLandmarks(upsample)
    if name == "annotated":
        return AnnotatedLandmarks()
    if name == "none":
        return None
    raise ValueError(f"unknown landmark provider {name!r}")


# ------------------------------------------------------------------------------- missing faces
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
    points = provider(frames, path=Path(path), positions=np.asarray(positions))
    filled, found = fill_missing(points)
    n_found = int(found.sum())
    if n_found == 0:
        msg = f"{path}: no face found in any of the {len(frames)} selected frames"
        if no_face == "error":
            raise DataError(
                msg + " (set data.regions.no_face: whole_frame to use the whole frame instead)"
            )
        log.warning("%s; using the whole frame (data.regions.no_face: whole_frame)", msg)
        return None, 0
    if n_found < len(frames):
        log.debug(
            "%s: %d of %d frames without a face, filled from the nearest",
            path,
            len(frames) - n_found,
            len(frames),
        )
    return filled, n_found
