"""CAS(ME)^3 Part A: a label sheet + frames `part_A/spNO.1/a/1.jpg` (numbered from 1).

Sheet columns: Subject (`spNO.1`), Filename (`a`), Onset, Apex, Offset, AU, Objective class,
emotion. One (Subject, Filename) recording holds several micro-expressions, so a sample is keyed
by (subject, filename, onset): sample id `casme3/spNO.1/a/116`. `root` may be the part_A folder
or its parent. A clip folder without images but with a `color/` sub-folder (the depth-camera
release keeps colour frames there) is read from `color/`.
"""

from __future__ import annotations

from pathlib import Path

from mer.datasets.media import IMAGE_EXTENSIONS
from mer.datasets.records import (
    BlankFrames,
    Record,
    aus_text,
    frame_number,
    parse_aus,
    text_cell,
)
from mer.datasets.table import read_table
from mer.errors import DataError

HEADER = (("Subject",), ("Filename",))


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
    col_subject = table.column("Subject")
    col_file = table.column("Filename")
    col_on = table.column("Onset", "Onset Frame", "OnsetFrame")
    col_apex = table.column("Apex", "Apex Frame", "ApexFrame")
    col_off = table.column("Offset", "Offset Frame", "OffsetFrame")
    col_aus = table.column("AU", "Action Units", "AUs")
    col_emo = table.column("emotion", "Estimated Emotion")
    blanks = BlankFrames(table.label)
    out = []
    for row_no, row in table.rows:
        where = table.where(row_no)
        subject = text_cell(table.cell(row, col_subject), where, "Subject")
        clip = text_cell(table.cell(row, col_file), where, "Filename")
        onset = frame_number(table.cell(row, col_on), where, "Onset")
        if onset is None:
            raise DataError(
                f"{where}: Onset is empty; CAS(ME)^3 needs it to tell the clips of "
                f"{subject}/{clip} apart"
            )
        au_cell = table.cell(row, col_aus)
        out.append(
            Record(
                dataset="casme3",
                subject_raw=subject,
                subject=f"casme3/{subject}",
                clip=clip,
                emotion=text_cell(table.cell(row, col_emo), where, "emotion").lower(),
                where=where,
                onset=onset,
                apex=blanks.read(table.cell(row, col_apex), row_no, where, table.columns[col_apex]),
                offset=blanks.read(table.cell(row, col_off), row_no, where, table.columns[col_off]),
                aus=parse_aus(au_cell),
                aus_raw=aus_text(au_cell),
                media=clip_folder(base, subject, clip) if base is not None else None,
                id_suffix=f"/{onset}",
            )
        )
    blanks.report()
    return out
