"""The original code's layout: `root/{negative,positive,surprise}/*.mp4` + an xlsx of subjects.

The class is the folder. The sheet (first sheet with a header holding 'Subject' and 'Filename')
maps Filename (the video's name, with or without extension) → Subject and Action Units; its
emotion column, if any, is not used. A video without a row is an error, and so is a Filename
listed twice (the video could not be told apart); sheet rows without a video are logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.data.readers.media_check import VIDEO_SUFFIXES, subfolders, video_files
from mer.data.readers.records import Record, aus_text, parse_aus, text_cell
from mer.data.readers.table import read_table
from mer.errors import DataError

log = logging.getLogger(__name__)

HEADER = (("Subject",), ("Filename",))


def read(annotations: Path, root: Path) -> list[Record]:
    if not root.is_dir():
        raise DataError(f"data.root: video folder {root} not found")
    table = read_table(annotations, HEADER)
    col_subject = table.column("Subject")
    col_file = table.column("Filename")
    col_aus = table.column("Action Units", "AU", "AUs")
    by_name: dict[str, tuple[str, str, Any]] = {}  # stem → (where, subject, AU cell)
    for row_no, row in table.rows:
        where = table.where(row_no)
        name = text_cell(table.cell(row, col_file), where, "Filename")
        if Path(name).suffix.lower() in VIDEO_SUFFIXES:
            name = Path(name).stem
        if name in by_name:
            raise DataError(
                f"{where}: Filename {name} is also on {by_name[name][0]}; each video name must "
                "identify one row"
            )
        subject = text_cell(table.cell(row, col_subject), where, "Subject")
        by_name[name] = (where, subject, table.cell(row, col_aus))
    out: list[Record] = []
    for class_dir in subfolders(root):
        videos = video_files(class_dir)
        if not videos:
            log.warning("videos: %s holds no video files; not read", class_dir)
            continue
        for video in videos:
            if video.stem not in by_name:
                raise DataError(
                    f"{table.label}: no row with Filename {video.stem} for video {video}"
                )
            where, subject, au_cell = by_name[video.stem]
            out.append(
                Record(
                    dataset="videos",
                    subject_raw=subject,
                    subject=f"videos/{subject}",
                    clip=video.stem,
                    emotion=class_dir.name.lower(),
                    where=f"{video} ({where})",
                    aus=parse_aus(au_cell),
                    aus_raw=aus_text(au_cell),
                    media=video,
                    kind="video",
                )
            )
    if not out:
        raise DataError(f"data.root: no videos under {root} (expected <class>/<name>.mp4)")
    unused = sorted(set(by_name) - {r.clip for r in out})
    if unused:
        log.info(
            "videos: %d row(s) of %s have no video (first: %s)", len(unused), table.label, unused[0]
        )
    return out
