"""The landmark cache: a clip's detections, computed once and shared by every data config that
selects the same frames with the same detector settings.

Face detection is the slow part of preparing a clip (dlib's HOG detector: 30-120 ms per 640x360
frame), and region policies of one sweep (`au_oracle`, `all`, `fixed` or `none` with a face crop)
differ only in how they cut the same frames: their prepares share the detections through this
cache, so the second one detects nothing.

File: `{data.cache_dir}/.landmarks/{key[:2]}/{key}.npz` holding `points` (T, 68, 2) float32 (NaN
without a face), `rejected` and `off_track` (mer.data.faces.detection.FaceDetections). The key
covers the media (resolved path, size and mtime of the video, or of each selected frame file, and
the video decoder), the selected positions, the provider and its settings (upsample, min_score,
track) and the dlib version. Written to a temporary file and renamed into place: a reader never
sees a partial file, and concurrent writers of one key write the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mer.data.faces.detection import FaceDetections
from mer.util.files import write_bytes_unique

log = logging.getLogger(__name__)

STORE_VERSION = 1
FOLDER = ".landmarks"  # hidden: the cache dir's visible entries are prepared datasets


def _dlib_version() -> str:
    try:
        return metadata.version("dlib-bin")
    except metadata.PackageNotFoundError:
        try:
            return metadata.version("dlib")
        except metadata.PackageNotFoundError:
            return "unknown"


def _stat(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def store_key(
    media: Path,
    files: list[Path] | None,
    positions: np.ndarray,
    settings: dict[str, Any],
) -> str:
    """Key of one clip's detections (see the module doc). `files`: the frame files of an image
    sequence (None for a video); `settings`: provider name and detector settings."""
    pos = [int(p) for p in np.asarray(positions).tolist()]
    if files is None:
        sources = [_stat(Path(media))]
    else:
        sources = [_stat(files[p]) for p in sorted(set(pos))]
    body = {
        "version": STORE_VERSION,
        "media": sources,
        "positions": pos,
        "settings": settings,
        "dlib": _dlib_version() if settings.get("provider") == "dlib" else None,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _file(root: Path, key: str) -> Path:
    return Path(root).expanduser() / FOLDER / key[:2] / f"{key}.npz"


def load(root: Path, key: str, n_frames: int) -> FaceDetections | None:
    """The stored detections of `key`, or None (absent or unreadable: detect again)."""
    path = _file(root, key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            points = np.asarray(z["points"], dtype=np.float32)
            rejected, off_track = int(z["rejected"]), int(z["off_track"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable landmark cache entry (%s); detecting again", path, exc)
        return None
    if points.shape != (n_frames, 68, 2):
        log.warning("%s: landmarks of shape %s, expected (%d, 68, 2); detecting again",
                    path, points.shape, n_frames)  # fmt: skip
        return None
    return FaceDetections(points, rejected=rejected, off_track=off_track)


def save(root: Path, key: str, det: FaceDetections) -> None:
    """Store `det` under `key` atomically (a failure to write only costs a later detection)."""
    path = _file(root, key)
    buf = io.BytesIO()
    np.savez(buf, points=det.points, rejected=det.rejected, off_track=det.off_track)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_unique(path, buf.getvalue(), prefix=f".{key}.")
    except OSError as exc:
        log.warning("%s: cannot write the landmark cache (%s)", path, exc)
