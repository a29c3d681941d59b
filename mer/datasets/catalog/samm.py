"""SAMM: `SAMM_Micro_FACS_Codes_v2.xlsx` (sheet MICRO_ONLY) + frames `006/006_1_2/006_05562.jpg`.

The header sits below 13 rows of notes in the distributed file; it is found by content (the row
holding 'Subject' and 'Filename'), so a copy with more or fewer note rows reads the same. Subjects
are zero-padded to 3 digits (`6` → `006`), the media folder's spelling. Frame numbers are the
video's (`006_05562.jpg` is frame 5562), as in the sheet.
"""

from __future__ import annotations

from pathlib import Path

from mer.datasets.coded_sheet import sheet_records
from mer.datasets.records import Record
from mer.datasets.table import read_table

SHEET = "MICRO_ONLY"
HEADER = (("Subject",), ("Filename",))


def subject_folder(number: int) -> str:
    """Subject 6 → `006` (media folder and sample-id spelling)."""
    return f"{number:03d}"


def read(annotations: Path, root: Path | None) -> list[Record]:
    table = read_table(annotations, HEADER, sheet=SHEET)
    return sheet_records(table, "samm", subject_folder, root)
