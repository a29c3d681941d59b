"""Media checks done while reading annotations: the frames or video a row points at exist.

Decoding is media.py's job (and so is listing a clip's frames: `mer.datasets.media.list_frames`,
frame number = last run of digits in the file name); here we only make sure a clip's files are
where the annotation says, so a wrong root or a frame range outside the clip fails before any
preprocessing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from mer.datasets.media import IMAGE_EXTENSIONS, list_frames
from mer.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_SUFFIXES", "check_frames", "check_video", "list_frames"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


def check_frames(
    folder: Path, where: str, onset: int | None, apex: int | None, offset: int | None
) -> Path:
    """The folder exists, holds image frames, and they cover onset..offset where known."""
    if not folder.is_dir():
        raise DataError(f"{where}: frame folder {folder} not found (expected a folder of images)")
    try:
        frames = list_frames(folder)  # sorted by frame number; raises when there is none
    except DataError as exc:
        raise DataError(str(exc) if where == str(folder) else f"{where}: {exc}") from None
    first, last = frames[0][0], frames[-1][0]
    for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
        if value is not None and not first <= value <= last:
            raise DataError(
                f"{where}: {name} frame {value} is outside the clip: {folder} holds frames "
                f"{first}..{last}"
            )
    if onset is not None and offset is not None:
        numbers = {n for n, _ in frames}
        missing = [n for n in range(onset, offset + 1) if n not in numbers]
        if missing:
            log.warning(
                "%s: %d of frames %d..%d are missing in %s (first missing: %d)",
                where,
                len(missing),
                onset,
                offset,
                folder,
                missing[0],
            )
    return folder


def check_video(path: Path, where: str) -> Path:
    """The video file exists and is not empty (decoding is checked when frames are read)."""
    if not path.is_file():
        raise DataError(f"{where}: video file {path} not found")
    if path.stat().st_size == 0:
        raise DataError(f"{where}: video file {path} is empty")
    return path


def class_videos(root: Path, dataset: str) -> Iterator[tuple[Path, Path]]:
    """(class folder, video) for each video in each class folder under `root` (the layouts whose
    class is the folder); a class folder without videos is logged and skipped."""
    for class_dir in subfolders(root):
        videos = video_files(class_dir)
        if not videos:
            log.warning("%s: %s holds no video files; not read", dataset, class_dir)
        for video in videos:
            yield class_dir, video


def video_files(folder: Path) -> list[Path]:
    """Video files directly inside `folder`, sorted by name (hidden files ignored)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES
    )


def subfolders(folder: Path) -> list[Path]:
    """Immediate sub-folders, sorted by name (hidden ones ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
