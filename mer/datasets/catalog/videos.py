"""The original code's layout: `root/{negative,positive,surprise}/*.mp4` + an xlsx of subjects.

The class is the folder. The sheet (first sheet with a header holding 'Subject' and 'Filename')
maps Filename (the video's name, with or without extension) → Subject and Action Units; its
emotion column, if any, is not used. A video without a row is an error; a Filename listed twice
(the video could not be told apart) or a row with a bad cell is an invalid row
(`data.invalid_rows`), but only when a video on disk uses it: an unused row is unused, valid or
not.

The clips are the videos on disk, not the sheet's rows: the sheet is a lookup table, and the
original code read the dataset's full coding sheet (CASME II's, 255 rows) beside folders that hold
only the negative/positive/surprise videos, so rows without a video are expected (others, fear,
sadness ...) and are not an error. They are logged at WARNING with their count, their emotions
when the sheet has an emotion column, and the first names, in prepare and in a dry run alike.

Synthetic layout: `out/data/{negative,positive,surprise}/sub01_EP02_01f.mp4` (H.264 yuv420p,
30 fps) and `out/videos-coding.xlsx`, Sheet1: Subject (sub01), Filename (file stem), Action
Units, Estimated Emotion.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mer.datasets.au_cells import DecimalAus, read_au_cell
from mer.datasets.catalog import casme2
from mer.datasets.media_check import VIDEO_SUFFIXES, class_videos
from mer.datasets.problems import RowCollector, RowError
from mer.datasets.records import Record, text_cell
from mer.datasets.spec import DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan, one_clip_per_media
from mer.datasets.synthetic.writers import Sheet, au_cell, write_xlsx
from mer.datasets.table import read_table
from mer.errors import DataError

log = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Estimated Emotion", "Emotion"),  # optional, only for the unused-rows warning
}
HEADER = (COLUMNS["subject"], COLUMNS["filename"])


def read(annotations: Path, root: Path) -> list[Record]:
    if not root.is_dir():
        raise DataError(f"data.root: video folder {root} not found")
    table = read_table(annotations, HEADER)
    col_subject = table.column(*COLUMNS["subject"])
    col_file = table.column(*COLUMNS["filename"])
    col_aus = table.column(*COLUMNS["aus"])
    col_emo = table.column(*COLUMNS["emotion"], required=False)
    by_name: dict[str, tuple[str, str, list[int], str, dict]] = {}  # stem → where, subject, AUs
    described: dict[str, tuple[int, str]] = {}  # stem → (row, emotion cell): for unused rows
    invalid: set[str] = set()  # stems of invalid rows: their videos are left out with them
    rows = RowCollector()
    decimals = DecimalAus(table.label)
    problem_names: list[str | None] = []  # the Filename of each problem's row, when read
    for row_no, row in table.rows:
        where = table.where(row_no)
        name: str | None = None
        before = len(rows.problems)
        with rows.row(where, **table.origin(row_no)) as ctx:
            name = text_cell(table.cell(row, col_file), where, "Filename")
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                name = Path(name).stem
            if name in by_name:
                invalid.add(name)  # which row describes the video is unknown: neither is read
                raise RowError(
                    where,
                    f"Filename {name} is also on {by_name[name][0]}",
                    "each video name to identify one row",
                    sep="; ",
                )
            invalid.add(name)  # until the whole row is read
            subject = text_cell(table.cell(row, col_subject), where, "Subject")
            ctx.sample_id = f"videos/{subject}/{name}"
            aus, aus_raw, decimal = read_au_cell(
                table.cell(row, col_aus), where, table.columns[col_aus]
            )
            if decimal:
                decimals.note(row_no, aus_raw)
            by_name[name] = (where, subject, aus, aus_raw, table.origin(row_no))
            invalid.discard(name)
            emotion = table.cell(row, col_emo)
            described[name] = (row_no, "" if emotion is None else str(emotion).strip().lower())
        problem_names += [name] * (len(rows.problems) - before)
    decimals.report()
    out: list[Record] = []
    videos = list(class_videos(root, "videos"))
    # a lookup table: an invalid row that no video uses is as unused as a valid one
    stems = {video.stem for _, video in videos}
    rows.problems = [
        p for p, n in zip(rows.problems, problem_names, strict=True) if n is None or n in stems
    ]
    for class_dir, video in videos:
        if video.stem in invalid:
            continue  # its row is listed among the invalid rows
        if video.stem not in by_name:
            raise DataError(f"{table.label}: no row with Filename {video.stem} for video {video}")
        where, subject, aus, aus_raw, origin = by_name[video.stem]
        out.append(
            Record(
                dataset="videos",
                subject_raw=subject,
                subject=f"videos/{subject}",
                clip=video.stem,
                emotion=class_dir.name.lower(),
                where=f"{video} ({where})",
                aus=aus,
                aus_raw=aus_raw,
                media=video,
                kind="video",
                origin=origin,
            )
        )
    if not out and not rows.problems:
        raise DataError(f"data.root: no videos under {root} (expected <class>/<name>.mp4)")
    _log_unused(table.label, root, described, {r.clip for r in out})
    return rows.done(out)


def _log_unused(
    label: str, root: Path, described: dict[str, tuple[int, str]], used: set[str]
) -> None:
    """One WARNING for the sheet rows that no video uses (see the module doc for why not an
    error): count, emotions, first names, so a wrong root or misnamed files stand out."""
    unused = [name for name in described if name not in used]
    if not unused:
        return
    counts = Counter(described[n][1] or "blank" for n in unused)
    by_emotion = ", ".join(f"{e} {k}" for e, k in sorted(counts.items()))
    if set(counts) == {"blank"}:
        by_emotion = "none"
    first = ", ".join(f"{n} (row {described[n][0]})" for n in unused[:3])
    log.warning(
        "videos: %d of %d row(s) of %s have no video under %s/<class>/ and are not read "
        "(emotion column: %s; first: %s)",
        len(unused), len(described), label, root, by_emotion, first,
    )  # fmt: skip


# -------------------------------------------------------------------------- synthetic layout
def _clip_names(plan: SubjectPlan) -> list[str]:
    """`sub01_EP02_01f`: the subject and a CASME II episode name."""
    return [f"{plan.name}_{c}" for c in casme2.episode_clips(plan)]


def _media(plan: SubjectPlan, name: str, label: str | None) -> tuple[str, list[int]]:
    return f"{label}/{name}.mp4", list(range(plan.frames))


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    rows: list[list[Any]] = [["Subject", "Filename", "Action Units", "Estimated Emotion"]]
    rows += [[c.subject, c.clip, au_cell(c.aus), c.emotion] for c, _ in clips]
    write_xlsx(path, [Sheet("Sheet1", rows)])


SPEC = DatasetSpec(
    name="videos",
    title="the original code's layout",
    order=70,
    read=read,
    columns=COLUMNS,
    label_scheme="folder3",
    frames=FrameDefaults(count=30, select="motion_topk"),  # the original's CASME II videos
    needs_root=True,
    class_from_folder=True,
    synthetic=SyntheticLayout(
        stream=5,
        root_dir="data",
        annotation_file="videos-coding.xlsx",
        subject_name=casme2.subject_folder,
        vocabulary=casme2.VOCABULARY,
        sequences=one_clip_per_media(_clip_names, _media),
        write_annotations=write_annotations,
        video=True,
    ),
)
