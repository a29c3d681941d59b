"""CASME II: `CASME2-coding-*.xlsx` (Sheet1) + frames `root/sub01/EP02_01f/img46.jpg`.

The Subject cell is text `'01'` in the distributed file (a re-saved copy may hold the number 1);
both become `sub01`, the media folder's name. Filenames repeat across subjects, so a clip is
keyed by (subject, filename). A frame cell holding text (the real file has `/` as the apex of
sub04/EP12_01f, row 31) is read as unknown (NA) and logged. The "Cropped" variant has the same
tree: point the root at it.
"""

from __future__ import annotations

from pathlib import Path

from mer.datasets.coded_sheet import sheet_records
from mer.datasets.records import Record
from mer.datasets.table import read_table

SHEET = "Sheet1"
HEADER = (("Subject",), ("Filename",))


def subject_folder(number: int) -> str:
    """Subject 1 → `sub01` (media folder and sample-id spelling)."""
    return f"sub{number:02d}"


def read(annotations: Path, root: Path | None) -> list[Record]:
    table = read_table(annotations, HEADER, sheet=SHEET)
    return sheet_records(table, "casme2", subject_folder, root)
