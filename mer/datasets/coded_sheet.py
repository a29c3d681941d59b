"""Rows of a FACS coding sheet (CASME II, SAMM): one clip per row, frames in a subject folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mer.datasets.au_cells import DecimalAus, read_au_cell
from mer.datasets.problems import RowCollector
from mer.datasets.records import BlankFrames, Record, subject_number, text_cell
from mer.datasets.table import Table, read_table

#: The sheet's columns: role → the header names accepted (compared without case and spaces).
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
#: What identifies the header row (some sheets have notes above it).
HEADER = (COLUMNS["subject"], COLUMNS["filename"])


def reader(
    dataset: str, sheet: str, subject_folder: Callable[[int], str]
) -> Callable[[Path, Path | None], list[Record]]:
    """The reader of a dataset distributed as this sheet: `read(annotations, root)`."""

    def read(annotations: Path, root: Path | None) -> list[Record]:
        return sheet_records(
            read_table(annotations, HEADER, sheet=sheet), dataset, subject_folder, root
        )

    return read


def sheet_records(
    table: Table, dataset: str, subject_folder: Callable[[int], str], root: Path | None
) -> list[Record]:
    """One Record per row; media `root/<subject folder>/<Filename>/`. Blank frame cells are
    unknown (NA), logged once for the sheet; every row problem is collected (InvalidRows)."""
    col_subject = table.column(*COLUMNS["subject"])
    col_file = table.column(*COLUMNS["filename"])
    cols = {name: table.column(*COLUMNS[name]) for name in ("onset", "apex", "offset")}
    col_aus = table.column(*COLUMNS["aus"])
    col_emo = table.column(*COLUMNS["emotion"])
    blanks = BlankFrames(table.label)
    decimals = DecimalAus(table.label)
    rows = RowCollector()
    out = []
    for row_no, row in table.rows:
        where = table.where(row_no)
        with rows.row(where, **table.origin(row_no)) as ctx:
            folder = subject_folder(subject_number(table.cell(row, col_subject), where))
            clip = text_cell(table.cell(row, col_file), where, "Filename")
            ctx.sample_id = f"{dataset}/{folder}/{clip}"
            aus, aus_raw, decimal = read_au_cell(
                table.cell(row, col_aus), where, table.columns[col_aus]
            )
            frames = {
                name: blanks.read(table.cell(row, col), row_no, where, table.columns[col])
                for name, col in cols.items()
            }
            emotion = text_cell(table.cell(row, col_emo), where, table.columns[col_emo])
            if decimal:
                decimals.note(row_no, aus_raw)
            out.append(
                Record(
                    dataset=dataset,
                    subject_raw=folder,
                    subject=f"{dataset}/{folder}",
                    clip=clip,
                    emotion=emotion.lower(),
                    where=where,
                    aus=aus,
                    aus_raw=aus_raw,
                    media=root / folder / clip if root is not None else None,
                    origin=table.origin(row_no),
                    **frames,
                )
            )
    blanks.report()
    decimals.report()
    return rows.done(out)
