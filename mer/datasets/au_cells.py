"""An annotation's AU cell → FACS codes, with a range: what is not a FACS code is reported by row.

AU cells are written as text (`4+L10`, `R1+R2`, `1A+2B`, `NULL`, `?`) or, when a sheet typed them
as numbers, as numbers. The codes are every run of digits (`R12+L14` → 12, 14; repeats once, in
first-seen order); sides, intensities and notes stay in `aus_raw` as written. Each code must be
a FACS code (`mer.datasets.facs.FACS_CODES`); anything else is a `RowError` naming the row:

- a number outside FACS (`41306`, `2013`): reported, never guessed;
- a date cell (a spreadsheet turned `1.2.13` or `41306` into 2013-02-01): reported with its
  date and serial number (`41306`), where the digit runs would have read AUs 2013, 2, 1, 0;
- a number with a decimal point (MEVIEW types `1+2` as the number `1.2`): read as the AUs on
  either side of the point (`1.2` → 1 and 2), logged once per file (`DecimalAus`); the number's
  shortest decimal form is used, so `1.20` typed in a number cell is `1.2` too (a sheet cannot
  tell them apart). `12.0` is the integer 12.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from typing import Any

from mer.datasets.facs import FACS_CODES, FACS_RANGE
from mer.datasets.problems import RowError, rows_text

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"\d+")
_DECIMAL = re.compile(r"(\d+)\.(\d+)")
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)  # serial 1 = 1900-01-01 (Excel's 1900 date system)
EXPECTED = f"FACS codes such as 1+2, L12 or 4+R10 (codes {FACS_RANGE})"


def serial_date(serial: float) -> dt.date | None:
    """The date an Excel serial number stands for, when it is a plausible one (1950-2100)."""
    if not 18264 <= serial <= 73051:
        return None
    return (_EXCEL_EPOCH + dt.timedelta(days=float(serial))).date()


def _serial(value: dt.datetime | dt.date) -> int:
    day = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    return (day - _EXCEL_EPOCH).days


def _checked(codes: list[int], cell: str, where: str, column: str) -> list[int]:
    bad = [c for c in codes if c not in FACS_CODES]
    if bad:
        first = bad[0]
        date = serial_date(first)
        why = f" (the Excel date {date:%Y-%m-%d}: a date stored as a number?)" if date else ""
        which = "is not a FACS code" if len(bad) == 1 else "are not FACS codes"
        what = (
            f"{column} is {cell}, which {which}{why}"
            if cell.isdigit()
            else f"{column} {cell} holds {', '.join(map(str, bad))}, which {which}{why}"
        )
        raise RowError(where, what, EXPECTED, sep="; ")
    out: list[int] = []
    for c in codes:
        if c not in out:
            out.append(c)
    return out


def read_au_cell(
    value: Any, where: str, column: str = "Action Units"
) -> tuple[list[int], str, bool]:
    """(AU codes, the cell as written, read from a decimal number?). RowError when the cell is a
    date or holds a number that is not a FACS code (see the module doc)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return [], "", False
    if isinstance(value, bool):
        raise RowError(where, f"{column} is {value!r}", EXPECTED, sep="; ")
    if isinstance(value, (dt.datetime, dt.date)):
        raise RowError(
            where,
            f"{column} is a date cell ({value:%Y-%m-%d}, stored as {_serial(value)}), not AU "
            "codes (the spreadsheet turned the cell into a date)",
            EXPECTED,
            sep="; ",
        )
    if isinstance(value, float) and not value.is_integer():
        text = repr(value)
        m = _DECIMAL.fullmatch(text)
        if m is None:
            raise RowError(where, f"{column} is the number {text}", EXPECTED, sep="; ")
        a, b = m.groups()
        shown = f"{text} (read as AUs {a}+{b})"
        return _checked([int(a), int(b)], shown, where, column), text, True
    if isinstance(value, (int, float)):
        n = int(value)
        if n < 0:
            raise RowError(where, f"{column} is the number {n}", EXPECTED, sep="; ")
        return _checked([n], str(n), where, column), str(n), False
    text = str(value)  # as written (aus_raw keeps even a trailing space)
    codes = [int(d) for d in _DIGITS.findall(text)]
    return _checked(codes, repr(text.strip()), where, column), text, False


class DecimalAus:
    """AU cells of one file read from decimal numbers (`1.2` → 1+2), logged once for the file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.rows: list[tuple[int, str]] = []

    def note(self, row: int, raw: str) -> None:
        self.rows.append((row, raw))

    def report(self) -> None:
        if not self.rows:
            return
        example = self.rows[0][1]
        a, b = example.split(".")
        log.warning(
            "%s: %d AU cell(s) stored as numbers with a decimal point read as two AUs (%s → "
            "AU%s+AU%s): %s",
            self.label, len(self.rows), example, a, b, rows_text([r for r, _ in self.rows]),
        )  # fmt: skip
