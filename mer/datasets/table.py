"""Annotation sheets (xlsx, xls or csv) read with Excel row numbers kept, so errors point at a row.

pandas is not used here on purpose: `read_excel` turns the text subject `'01'` into the number 1
and loses the sheet's row numbers; openpyxl (xlsx) and xlrd (the old binary .xls, e.g. MEVIEW's)
give the cells exactly as written. xlrd's numbers are floats (`12.0`; the cell parsers read whole
floats as integers), its date cells become `datetime` as openpyxl's do (so an AU cell turned
into a date is reported as one), error cells their text (`#N/A`).
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer.errors import DataError

HEADER_SCAN_ROWS = 50  # how far down a sheet the header row is looked for


def norm(name: Any) -> str:
    """Header cell → comparable key: `'Onset Frame'`, `'OnsetFrame'` → `onsetframe`."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower() if name is not None else ""


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class Table:
    """One sheet: its header and the non-empty rows below it, each with its 1-based row number."""

    path: Path
    sheet: str | None  # None for a csv file
    header_row: int
    columns: list[str]
    rows: list[tuple[int, tuple[Any, ...]]]

    @property
    def label(self) -> str:
        return f"{self.path}" + (f", sheet '{self.sheet}'" if self.sheet else "")

    def where(self, row: int) -> str:
        """How a user finds a row: file, sheet and the row number Excel shows."""
        return f"{self.label}, row {row}"

    def origin(self, row: int) -> dict[str, Any]:
        """File, sheet and row of a row, for `Record.origin` and the problem list."""
        return {"file": str(self.path), "sheet": self.sheet, "row": row}

    def column(self, *aliases: str, required: bool = True) -> int | None:
        """Index of the first column whose header matches one of `aliases` (compared by `norm`)."""
        keys = [norm(c) for c in self.columns]
        for alias in aliases:
            if norm(alias) in keys:
                return keys.index(norm(alias))
        if not required:
            return None
        also = f" (or {', '.join(repr(a) for a in aliases[1:])})" if len(aliases) > 1 else ""
        present = ", ".join(repr(c) for c in self.columns if c)
        raise DataError(
            f"{self.label}: no column {aliases[0]!r}{also} in the header on row "
            f"{self.header_row}; the columns are {present}"
        )

    @staticmethod
    def cell(row: tuple[Any, ...], index: int | None) -> Any:
        if index is None or index >= len(row):
            return None
        value = row[index]
        return None if is_blank(value) else value


def _header_index(rows: Sequence[tuple[Any, ...]], header: Sequence[Sequence[str]]) -> int | None:
    """First row (0-based) holding one alias of every group in `header`."""
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        keys = {norm(c) for c in row}
        if all(any(norm(a) in keys for a in group) for group in header):
            return i
    return None


def _describe(header: Sequence[Sequence[str]]) -> str:
    return " and ".join(repr(g[0]) for g in header)


def _sheet_rows(path: Path) -> list[tuple[str | None, list[tuple[Any, ...]]]]:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl  # lazy: ~0.5 s to import; loading a config must not pay for it

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
            raise DataError(
                f"annotation file {path} is not a readable xlsx workbook ({exc})"
            ) from None
        try:
            return [
                (name, [tuple(r) for r in wb[name].iter_rows(min_row=1, values_only=True)])
                for name in wb.sheetnames
            ]
        finally:
            wb.close()
    if suffix == ".csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                return [(None, [tuple(r) for r in csv.reader(fh)])]
        except UnicodeDecodeError as exc:
            raise DataError(f"annotation file {path} is not UTF-8 text ({exc})") from None
    if suffix == ".xls":
        return _xls_rows(path)
    raise DataError(f"annotation file {path}: expected an .xlsx, .xls or .csv file")


def _xls_rows(path: Path) -> list[tuple[str | None, list[tuple[Any, ...]]]]:
    """The sheets of an old binary workbook (BIFF .xls) through xlrd, cells as openpyxl gives
    them for xlsx: text, float numbers, datetime for date cells, bool, None for empty."""
    import xlrd  # lazy: only the old binary .xls sheets (MEVIEW) need it

    try:
        book = xlrd.open_workbook(str(path))
    except (xlrd.XLRDError, OSError, ValueError, AssertionError) as exc:
        raise DataError(f"annotation file {path} is not a readable .xls workbook ({exc})") from None

    def cell(c: Any) -> Any:
        if c.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
            return None
        if c.ctype == xlrd.XL_CELL_DATE:
            try:
                return xlrd.xldate.xldate_as_datetime(c.value, book.datemode)
            except (xlrd.xldate.XLDateError, ValueError, OverflowError):
                return c.value
        if c.ctype == xlrd.XL_CELL_BOOLEAN:
            return bool(c.value)
        if c.ctype == xlrd.XL_CELL_ERROR:
            return xlrd.error_text_from_code.get(c.value, "#ERROR")
        return c.value

    try:
        return [
            (sh.name, [tuple(cell(c) for c in sh.row(i)) for i in range(sh.nrows)])
            for sh in book.sheets()
        ]
    finally:
        book.release_resources()


def read_table(path: Path, header: Sequence[Sequence[str]], sheet: str | None = None) -> Table:
    """Read the sheet `sheet` (or the first sheet that has a header) of an xlsx/csv file.

    The header row is found by content (the first row holding one alias of each group in `header`)
    because some files put notes above it (SAMM has 13 rows of notes).
    """
    if not path.is_file():
        raise DataError(f"annotation file {path} not found")
    sheets = _sheet_rows(path)
    names = [name for name, _ in sheets]
    if sheet is not None and path.suffix.lower() != ".csv":
        if sheet not in names:
            raise DataError(
                f"annotation file {path} has no sheet {sheet!r} (sheets: {', '.join(names)})"
            )
        sheets = [s for s in sheets if s[0] == sheet]
    for name, rows in sheets:
        h = _header_index(rows, header)
        if h is None:
            continue
        body = [
            (i + 1, row)
            for i, row in enumerate(rows)
            if i > h and not all(is_blank(v) for v in row)
        ]
        columns = ["" if c is None else str(c).strip() for c in rows[h]]
        return Table(path=path, sheet=name, header_row=h + 1, columns=columns, rows=body)
    where = f", sheet '{sheets[0][0]}'" if len(sheets) == 1 and sheets[0][0] else ""
    if len(sheets) > 1:
        where = f" (sheets: {', '.join(n for n, _ in sheets)})"
    raise DataError(
        f"header not found in {path}{where}: expected a row whose cells include "
        f"{_describe(header)} within the first {HEADER_SCAN_ROWS} rows"
    )


def read_sheet(path: Path, sheet: str) -> Table:
    """Every non-empty row of sheet `sheet`, for a sheet without a header row (CAS(ME)^2's
    columns A-I): `columns` is empty, cells are read by position."""
    if not path.is_file():
        raise DataError(f"annotation file {path} not found")
    sheets = dict(_sheet_rows(path))
    if sheet not in sheets:
        raise DataError(
            f"annotation file {path} has no sheet {sheet!r} (sheets: {', '.join(map(str, sheets))})"
        )
    body = [(i + 1, row) for i, row in enumerate(sheets[sheet]) if not all(map(is_blank, row))]
    return Table(path=path, sheet=sheet, header_row=0, columns=[], rows=body)


def read_csv_lines(path: Path) -> list[tuple[int, list[str]]]:
    """A header-less csv as (1-based line number, stripped cells), blank lines left out."""
    if not path.is_file():
        raise DataError(f"annotation file {path} not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise DataError(f"annotation file {path} is not UTF-8 text ({exc})") from None
    return [
        (i + 1, [c.strip() for c in cells])
        for i, cells in enumerate(lines)
        if any(c.strip() for c in cells)
    ]
