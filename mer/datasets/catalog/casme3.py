"""CAS(ME)^3 Part A: a label sheet + frames `part_A/spNO.1/a/1.jpg` (numbered from 1).

Sheet columns: Subject (`spNO.1`), Filename (`a`), Onset, Apex, Offset, AU, Objective class,
emotion. One (Subject, Filename) recording holds several micro-expressions, so a sample is keyed
by (subject, filename, onset): sample id `casme3/spNO.1/a/116`. `root` may be the part_A folder
or its parent. A clip folder without images but with a `color/` sub-folder (the depth-camera
release keeps colour frames there) is read from `color/`.

Synthetic layout: `out/CASME3/part_A/spNO.1/a/1.jpg ...` (RGB JPEG, numbered from 1) and
`out/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, sheet "label": Subject, Filename, Onset, Apex,
Offset, AU, Objective class, emotion; two micro-expressions per frame folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mer.datasets.au_cells import DecimalAus, read_au_cell
from mer.datasets.labels import NPS, LabelScheme
from mer.datasets.media import IMAGE_EXTENSIONS
from mer.datasets.problems import RowCollector, RowError
from mer.datasets.records import BlankFrames, Record, frame_number, text_cell
from mer.datasets.spec import Choice, DatasetSpec, FrameDefaults, PlannedMedia, SyntheticLayout
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan, samm_objective_class
from mer.datasets.synthetic.writers import Sheet, au_cell, write_xlsx
from mer.datasets.table import read_table

COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"),
    "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
    "aus": ("AU", "Action Units", "AUs"),
    "emotion": ("emotion", "Estimated Emotion"),
}
HEADER = (COLUMNS["subject"], COLUMNS["filename"])


def resolve_root(root: Path | None) -> Path | None:
    """`root/part_A` when present, else `root`."""
    if root is not None and (root / "part_A").is_dir():
        return root / "part_A"
    return root


def clip_folder(base: Path, subject: str, clip: str) -> Path:
    folder = base / subject / clip
    if (folder / "color").is_dir() and not any(
        p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file()
    ):
        return folder / "color"
    return folder


def read(annotations: Path, root: Path | None) -> list[Record]:
    table = read_table(annotations, HEADER)
    base = resolve_root(root)
    col_subject, col_file, col_on, col_apex, col_off, col_aus, col_emo = (
        table.column(*COLUMNS[role])
        for role in ("subject", "filename", "onset", "apex", "offset", "aus", "emotion")
    )
    blanks = BlankFrames(table.label)
    decimals = DecimalAus(table.label)
    rows = RowCollector()
    out = []
    for row_no, row in table.rows:
        where = table.where(row_no)
        with rows.row(where, **table.origin(row_no)) as ctx:
            subject = text_cell(table.cell(row, col_subject), where, "Subject")
            clip = text_cell(table.cell(row, col_file), where, "Filename")
            ctx.sample_id = f"casme3/{subject}/{clip}"
            onset = frame_number(table.cell(row, col_on), where, "Onset")
            if onset is None:
                raise RowError(
                    where,
                    "Onset is empty",
                    f"a frame number: CAS(ME)^3 needs it to tell the clips of {subject}/{clip} "
                    "apart",
                    sep="; ",
                )
            ctx.sample_id += f"/{onset}"
            aus, aus_raw, decimal = read_au_cell(
                table.cell(row, col_aus), where, table.columns[col_aus]
            )
            emotion = text_cell(table.cell(row, col_emo), where, "emotion").lower()
            apex = blanks.read(table.cell(row, col_apex), row_no, where, table.columns[col_apex])
            offset = blanks.read(table.cell(row, col_off), row_no, where, table.columns[col_off])
            if decimal:
                decimals.note(row_no, aus_raw)
            out.append(
                Record(
                    dataset="casme3",
                    subject_raw=subject,
                    subject=f"casme3/{subject}",
                    clip=clip,
                    emotion=emotion,
                    where=where,
                    onset=onset,
                    apex=apex,
                    offset=offset,
                    aus=aus,
                    aus_raw=aus_raw,
                    media=clip_folder(base, subject, clip) if base is not None else None,
                    id_suffix=f"/{onset}",
                    origin=table.origin(row_no),
                )
            )
    blanks.report()
    decimals.report()
    return rows.done(out)


# ----------------------------------------------------------------------------------- labels
# The sheet writes happy/sad/others; the longer spellings are accepted as the same words.
EMOTIONS = ("anger", "disgust", "fear", "happy", "sad", "surprise", "others")
_ALIASES = {"happiness": "happy", "sadness": "sad", "other": "others", "angry": "anger"}
_NEGATIVE = {"anger": "negative", "disgust": "negative", "fear": "negative", "sad": "negative"}


def _mapping(target: dict[str, str | None]) -> dict[str, str | None]:
    """Each emotion (and its aliases) → `target[emotion]`."""
    full = {e: target[e] for e in EMOTIONS}
    full.update({a: full[e] for a, e in _ALIASES.items()})
    return full


THREE = _mapping({**_NEGATIVE, "happy": "positive", "surprise": "surprise", "others": None})
FOUR = _mapping({**_NEGATIVE, "happy": "positive", "surprise": "surprise", "others": "others"})
SCHEMES = (
    LabelScheme("casme3_3", NPS, doc="CAS(ME)^3 negative/positive/surprise (others dropped)"),
    LabelScheme("casme3_4", (*NPS, "others"), doc="CAS(ME)^3 negative/positive/surprise/others"),
    LabelScheme("casme3_7", EMOTIONS, doc="CAS(ME)^3 all seven emotions"),
)


# -------------------------------------------------------------------------- synthetic layout
VOCABULARY: dict[str | None, list[Choice]] = {
    "negative": [("disgust", "4+9"), ("disgust", "4+10"), ("anger", "4+7"), ("anger", "4"),
                 ("fear", "4+20"), ("sad", "15+17"), ("disgust", "L10")],
    "positive": [("happy", "12"), ("happy", "6+12"), ("happy", "R12")],
    "surprise": [("surprise", "1+2"), ("surprise", "1+2+5"), ("surprise", "L1+L2")],
    None: [("others", "25"), ("others", "18"), ("others", "7")],
}  # fmt: skip


def task_folder(j: int) -> str:
    """a, b, ..., z, aa, ab, ... (the task folders)."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(97 + r) + out
    return out


def _sequences(plan: SubjectPlan) -> Iterator[PlannedMedia]:
    """Two micro-expressions per task folder, one after the other, frames numbered from 1."""
    for f in range(math.ceil(len(plan.labels) / 2)):
        folder = task_folder(f)
        labels = plan.labels[2 * f : 2 * f + 2]
        clips = [plan.clip(folder, label, k * plan.frames) for k, label in enumerate(labels)]
        yield f"part_A/{plan.name}/{folder}", list(range(1, plan.frames * len(clips) + 1)), clips


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    rows: list[list[Any]] = [
        ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    ]
    rows += [
        [c.subject, c.clip, c.onset, c.apex, c.offset, au_cell(c.aus),
         samm_objective_class(e["label"], c.aus), c.emotion]
        for c, e in clips
    ]  # fmt: skip
    write_xlsx(path, [Sheet("label", rows)])


SPEC = DatasetSpec(
    name="casme3",
    title="CAS(ME)^3 Part A",
    order=40,
    read=read,
    columns=COLUMNS,
    label_scheme="casme3_3",
    frames=FrameDefaults(count=30, select="motion_topk", window="annotated"),
    shared_media=True,
    labels={
        "megc3": THREE,
        "casme3_3": THREE,
        "casme3_4": FOUR,
        "casme3_7": _mapping({e: e for e in EMOTIONS}),
    },  # fmt: skip
    schemes=SCHEMES,
    synthetic=SyntheticLayout(
        stream=3,
        root_dir="CASME3",
        annotation_file="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
        subject_name=lambda number: f"spNO.{number}",
        vocabulary=VOCABULARY,
        sequences=_sequences,
        write_annotations=write_annotations,
        has_others=True,
        frame_name=lambda folder, n: f"{n}.jpg",
    ),
)
