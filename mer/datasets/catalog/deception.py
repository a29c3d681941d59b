"""Real-life deception (trial videos): `Clips/Deceptive/trial_lie_001.mp4`, `Clips/Truthful/...`.

The class is the folder (emotion `deceptive` / `truthful`). `root` may be the folder holding
`Clips/` or `Clips/` itself. The dataset ships no subject identities; an optional csv
(`annotations`) maps each clip to its person, with columns `clip` (or filename/video/id; with or
without `.mp4`) and `subject` (or person/identity). Without it every clip is its own subject, so
leave-one-subject-out becomes leave-one-clip-out, which is not subject independent (a WARNING
says so). A clip the csv does not list is an error; csv rows for clips that are not on disk are
logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mer.datasets.media_check import VIDEO_SUFFIXES, subfolders, video_files
from mer.datasets.records import Record, text_cell
from mer.datasets.table import read_table
from mer.errors import DataError

log = logging.getLogger(__name__)

CLIP_COLUMNS = ("clip", "filename", "video", "id")
SUBJECT_COLUMNS = ("subject", "person", "identity")


def resolve_root(root: Path) -> Path:
    if not root.is_dir():
        raise DataError(f"data.root: deception folder {root} not found")
    return root / "Clips" if (root / "Clips").is_dir() else root


def read_subjects(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """csv/xlsx clip → subject, and clip → the row that says so."""
    table = read_table(path, (CLIP_COLUMNS, SUBJECT_COLUMNS))
    col_clip = table.column(*CLIP_COLUMNS)
    col_subject = table.column(*SUBJECT_COLUMNS)
    subjects: dict[str, str] = {}
    rows: dict[str, str] = {}
    for row_no, row in table.rows:
        where = table.where(row_no)
        clip = text_cell(table.cell(row, col_clip), where, table.columns[col_clip])
        clip = Path(clip).stem if Path(clip).suffix.lower() in VIDEO_SUFFIXES else clip
        if clip in rows:
            raise DataError(f"{where}: clip {clip} is already listed in {rows[clip]}")
        subjects[clip] = text_cell(table.cell(row, col_subject), where, table.columns[col_subject])
        rows[clip] = where
    return subjects, rows


def read(annotations: Path | None, root: Path) -> list[Record]:
    base = resolve_root(root)
    subjects, rows = read_subjects(annotations) if annotations is not None else ({}, {})
    out: list[Record] = []
    for class_dir in subfolders(base):
        videos = video_files(class_dir)
        if not videos:
            log.warning("deception: %s holds no video files; not read", class_dir)
            continue
        for video in videos:
            clip = video.stem
            if annotations is None:
                person = clip
            elif clip in subjects:
                person = subjects[clip]
            else:
                raise DataError(
                    f"{annotations}: no row for clip {clip} ({video}); every clip needs its subject"
                )
            out.append(
                Record(
                    dataset="deception",
                    subject_raw=person,
                    subject=f"deception/{person}",
                    clip=clip,
                    emotion=class_dir.name.lower(),
                    where=f"{video} ({rows[clip]})" if clip in rows else str(video),
                    media=video,
                    kind="video",
                )
            )
    if not out:
        raise DataError(f"data.root: no videos under {base} (expected Deceptive/ and Truthful/)")
    on_disk = {r.clip for r in out}
    extra = sorted(set(subjects) - on_disk)
    if extra:
        log.warning(
            "deception: %d clip(s) in %s are not under %s (first: %s)",
            len(extra),
            annotations,
            base,
            extra[0],
        )
    if annotations is None:
        log.warning(
            "deception: no subject csv given; each of the %d clips is its own subject, so "
            "leave-one-subject-out is leave-one-clip-out (NOT subject independent)",
            len(out),
        )
    return out
