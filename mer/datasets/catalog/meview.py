"""MEVIEW (micro-expressions "in the wild": poker games and TV interviews): `MEVIEW.xls` + one
video per clip.

The sheet as distributed is an old binary workbook (`MEVIEW.xls`, sheet `List 1`), read directly
(xlrd; an .xlsx copy reads the same): Subject (1-16), Filename (`sub01-1`), OnsetFrame,
OffsetFrame (the expression's frames in the clip's video), VideoFile, StartFrameVideo,
EndFrameVideo (where the clip sits in the source video, not read), Length, Action Units, Emotion,
Note. 40 rows, 15 subjects (no subject 12). Its cells need care, all handled by row:

- Action Units are mostly numbers: `1.2` is AU1+AU2 (a number typed for `1+2`; read as the AUs
  on either side of the point, logged), `12.0` is AU12, `L12` text as usual; one cell is a date
  (`41306`, 2013-02-01): reported as an invalid row, never guessed (mer/datasets/au_cells.py).
- Three rows code no expression (OnsetFrame = OffsetFrame = 0, Length 0; notes "no emotion",
  "speaking", ...): invalid rows.
- Length disagrees with OffsetFrame - OnsetFrame on two rows (sub02-1: 8 frames, Length 2;
  sub07-4: 10, Length 11): logged; mer uses OnsetFrame..OffsetFrame.
- Emotion is blank on 13 rows (the coders named none) and spelled as coded (`comtempt`,
  `fear?`, `contempt/disgust`): the label schemes map these spellings as written.

So under the default `data.invalid_rows: error` the real sheet stops with its 4 invalid rows
listed; `exclude` (sweeps/meview.yaml) reads the other 36 clips of all 15 subjects.

Labels: the original code trains 4 classes (negative, positive, surprise, others) from class
folders it made itself, without publishing which emotion went where. `meview_4` maps anger,
contempt (also `comtempt`, `contempt/disgust`), disgust, fear (also `fear?`) and sadness to
negative, happy to positive, surprise to surprise, and a blank Emotion to others (MEGC2019 maps
SAMM's contempt to negative the same way); 36 clips: negative 12, positive 6, surprise 9,
others 9. `megc3` drops the others.

Media layout: NOT verified against the distribution. MEVIEW is distributed as video clips with
this sheet; the sheet names each clip by Filename and gives frames within the clip, but no
public code or document available here shows the archive's folder names or file extension. The
reader therefore looks for a video `<Filename>.<mp4|avi|...>` anywhere under `data.root` (so
flat folders, per-subject folders and the original code's class folders `negative/ positive/
surprise/ others/` all work) and reports a name found twice. Frame numbers are taken as the
video's 0-based frame indices (mer's convention for videos); if the clips number frames from 1
the window is one frame late. Frames are selected inside onset..offset (the clips hold seconds
of context around a 2-63 frame expression).

Synthetic layout: `out/MEVIEW/sub01-1.mp4 ...` (H.264 yuv420p, 30 fps, one clip per video) and
`out/MEVIEW.xlsx`, sheet `List 1`, the real columns, AU cells in MEVIEW's style (`1+2` as the
number 1.2, single AUs as numbers, sides as text), Emotion blank for the others. It is written
as .xlsx because no maintained library writes the old .xls format; .xls reading is tested on a
small fixture (tests/fixtures/meview_errata.xls) and on the real file when present.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from mer.datasets.au_cells import DecimalAus, read_au_cell
from mer.datasets.labels import NPS_OTHERS, LabelScheme
from mer.datasets.media_check import VIDEO_SUFFIXES
from mer.datasets.problems import RowCollector, RowError, rows_text
from mer.datasets.records import BlankFrames, Record, subject_number, text_cell
from mer.datasets.spec import Choice, DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan, one_clip_per_media
from mer.datasets.synthetic.writers import Sheet, write_xlsx
from mer.datasets.table import read_table
from mer.errors import DataError

log = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "length": ("Length",),  # optional: checked against offset - onset
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Emotion", "Estimated Emotion"),
    "note": ("Note", "Notes"),  # optional: quoted for rows that code no expression
}
HEADER = (COLUMNS["subject"], COLUMNS["filename"])
_FILENAME = re.compile(r"sub0*(\d+)-\d+", re.IGNORECASE)


def subject_folder(number: int) -> str:
    """Subject 1 → `sub01` (the Filename's spelling, used in sample ids)."""
    return f"sub{number:02d}"


def video_index(root: Path) -> dict[str, list[Path]]:
    """Every video under `root` (any depth, hidden files ignored) by file stem."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("."):
            found.setdefault(path.stem, []).append(path)
    return found


def _media(videos: dict[str, list[Path]] | None, root: Path | None, clip: str) -> Path | None:
    if videos is None or root is None:
        return None
    found = videos.get(clip, [])
    if len(found) > 1:
        raise DataError(
            f"data.root: {len(found)} videos named {clip} under {root} "
            f"({', '.join(str(p) for p in found)}); expected one"
        )
    return found[0] if found else root / f"{clip}.mp4"  # missing: the media check says so


def read(annotations: Path, root: Path | None) -> list[Record]:
    table = read_table(annotations, HEADER)
    col = {role: table.column(*names, required=role not in ("length", "note"))
           for role, names in COLUMNS.items()}  # fmt: skip
    videos = video_index(root) if root is not None and root.is_dir() else None
    blanks = BlankFrames(table.label)
    decimals = DecimalAus(table.label)
    lengths: list[int] = []
    rows = RowCollector()
    out = []
    for row_no, row in table.rows:
        where = table.where(row_no)
        with rows.row(where, **table.origin(row_no)) as ctx:
            number = subject_number(table.cell(row, col["subject"]), where)
            folder = subject_folder(number)
            clip = text_cell(table.cell(row, col["filename"]), where, "Filename")
            ctx.sample_id = f"meview/{folder}/{clip}"
            m = _FILENAME.fullmatch(clip)
            if m is not None and int(m.group(1)) != number:
                raise RowError(
                    where, f"Filename {clip} names subject {int(m.group(1))}, Subject is {number}",
                    "the same subject in both",
                )  # fmt: skip
            onset = blanks.read(table.cell(row, col["onset"]), row_no, where, "OnsetFrame")
            offset = blanks.read(table.cell(row, col["offset"]), row_no, where, "OffsetFrame")
            length = table.cell(row, col["length"])
            if onset == 0 and offset == 0:
                note = table.cell(row, col["note"])
                said = f"; Note: {str(note).strip()!r}" if note is not None else ""
                shown = int(length) if isinstance(length, float) and length.is_integer() else length
                raise RowError(
                    where,
                    f"OnsetFrame and OffsetFrame are 0 (Length {shown!r}): the row codes no "
                    f"expression{said}",
                    "the expression's first and last frame in the clip",
                    sep="; ",
                )
            aus, aus_raw, decimal = read_au_cell(table.cell(row, col["aus"]), where)
            emotion = table.cell(row, col["emotion"])
            if decimal:
                decimals.note(row_no, aus_raw)
            if (
                isinstance(length, (int, float))
                and onset is not None
                and offset is not None
                and offset - onset != length
            ):
                lengths.append(row_no)
            out.append(
                Record(
                    dataset="meview",
                    subject_raw=folder,
                    subject=f"meview/{folder}",
                    clip=clip,
                    emotion="" if emotion is None else str(emotion).strip().lower(),
                    where=where,
                    onset=onset,
                    offset=offset,
                    aus=aus,
                    aus_raw=aus_raw,
                    media=_media(videos, root, clip),
                    kind="video",
                    origin=table.origin(row_no),
                )
            )
    blanks.report()
    decimals.report()
    if lengths:
        log.warning(
            "%s: Length is not OffsetFrame - OnsetFrame on %s; frames OnsetFrame..OffsetFrame "
            "are used",
            table.label, rows_text(lengths),
        )  # fmt: skip
    return rows.done(out)


# ----------------------------------------------------------------------------------- labels
#: Emotion as written (lowercase; "" = blank) → class; see the module doc.
_NEGATIVE = ("anger", "contempt", "comtempt", "contempt/disgust", "disgust", "fear", "fear?",
             "sadness")  # fmt: skip
FOUR: dict[str, str | None] = {
    **dict.fromkeys(_NEGATIVE, "negative"),
    "happy": "positive",
    "happiness": "positive",
    "surprise": "surprise",
    "": "others",
}
THREE = {**FOUR, "": None}
MEVIEW_4 = LabelScheme(
    "meview_4",
    NPS_OTHERS,
    doc="MEVIEW negative/positive/surprise/others (blank Emotion = others)",
)


# -------------------------------------------------------------------------- synthetic layout
VOCABULARY: dict[str | None, list[Choice]] = {
    "negative": [("contempt", "R12"), ("contempt", "L12"), ("anger", "4"), ("fear?", "24"),
                 ("contempt/disgust", "R10")],
    "positive": [("happy", "12"), ("happy", "L12")],
    "surprise": [("surprise", "1+2")],
    "others": [("", "24"), ("", "2"), ("", "15"), ("", "1+2")],
}  # fmt: skip
# Real subject numbering (no 12); the synthetic one follows it, then continues.
SUBJECT_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)


def _clip_names(plan: SubjectPlan) -> list[str]:
    return [f"{plan.name}-{k + 1}" for k in range(len(plan.labels))]


def _video(plan: SubjectPlan, name: str, label: str | None) -> tuple[str, list[int]]:
    return f"{name}.mp4", list(range(plan.frames))


def meview_au_cell(aus: str) -> str | float:
    """An AU cell as MEVIEW types it: `1+2` as the number 1.2, a single AU as a number (12.0),
    anything with a side letter as text."""
    if aus.isdigit():
        return float(aus)
    m = re.fullmatch(r"(\d+)\+([1-9]\d*)", aus)
    if m and not m.group(2).endswith("0"):
        return float(f"{m.group(1)}.{m.group(2)}")
    return aus


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    header = ["Subject", "Filename", "OnsetFrame", "OffsetFrame", "VideoFile", "StartFrameVideo",
              "EndFrameVideo", "Length", "Action Units", "Emotion", "Note"]  # fmt: skip
    rows: list[list[Any]] = [header]
    for c, _ in clips:
        number = int(c.subject.removeprefix("sub"))
        start = 1000 * number + c.onset
        rows.append([number, c.clip, c.onset, c.offset, "synthetic-poker.mp4", start,
                     start + c.offset - c.onset, c.offset - c.onset, meview_au_cell(c.aus),
                     c.emotion or None, None])  # fmt: skip
    write_xlsx(path, [Sheet("List 1", rows)])


SPEC = DatasetSpec(
    name="meview",
    title="MEVIEW",
    order=47,
    read=read,
    columns=COLUMNS,
    label_scheme="meview_4",
    # the original: top-8 motion frames; inside onset..offset (the clips hold context)
    frames=FrameDefaults(count=8, select="motion_topk", window="annotated"),
    labels={"meview_4": FOUR, "megc3": THREE},
    schemes=(MEVIEW_4,),
    synthetic=SyntheticLayout(
        stream=7,
        root_dir="MEVIEW",
        annotation_file="MEVIEW.xlsx",
        subject_name=subject_folder,
        vocabulary=VOCABULARY,
        sequences=one_clip_per_media(_clip_names, _video),
        write_annotations=write_annotations,
        classes=NPS_OTHERS,
        video=True,
        subject_ids=SUBJECT_IDS,
    ),
)
