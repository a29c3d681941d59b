"""The record every reader produces, cell parsers, and the shared finish: ids, media, table."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mer.datasets.media_check import check_frames, check_video
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLUMNS = [
    "sample_id",
    "dataset",
    "subject",
    "clip",
    "onset",
    "apex",
    "offset",
    "aus",
    "aus_raw",
    "emotion",
    "path",
    "where",  # where the user finds the clip (Record.where), for messages after the table is built
]
_DIGITS = re.compile(r"\d+")


@dataclass
class Record:
    """One annotated clip before it becomes a row of the sample table."""

    dataset: str
    subject_raw: str  # spelling used in the sample id (the media folder's): sub01, 006, s1, spNO.1
    subject: str  # namespaced person id: casme2/sub01, samm/006, smic/s01
    clip: str
    emotion: str
    where: str  # where the user finds it: "FILE, row 31" or a folder
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    aus: list[int] = field(default_factory=list)
    aus_raw: str = ""
    media: Path | None = None  # expected frame folder or video file (not yet checked)
    kind: Literal["frames", "video"] = "frames"
    id_suffix: str = ""  # casme3: "/{onset}" (several clips per subject and filename)
    extra: dict[str, Any] = field(default_factory=dict)  # extra columns (megc_label)

    @property
    def sample_id(self) -> str:
        return f"{self.dataset}/{self.subject_raw}/{self.clip}{self.id_suffix}"


# ------------------------------------------------------------------------------------ cells
def parse_aus(value: Any) -> list[int]:
    """Every run of digits is an AU: `"R12+L14"` → [12, 14]; `"?"`, empty, NaN → [].

    Repeats are kept once, in first-seen order (`"L12+R12"` → [12]).
    """
    out: list[int] = []
    for digits in _DIGITS.findall(aus_text(value)):
        if int(digits) not in out:
            out.append(int(digits))
    return out


def aus_text(value: Any) -> str:
    """The AU cell as written (numbers as `12`, empty/NaN as "")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def frame_number(value: Any, where: str, column: str) -> int | None:
    """A frame-number cell → int; text such as `/` → unknown (None), said in a log line.

    A blank cell is unknown too, without a line here: readers count blanks with `BlankFrames`
    and log them once per file.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: {column} is {value!r}, expected a frame number")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not value.is_integer():
            raise DataError(f"{where}: {column} is {value!r}, expected a whole frame number")
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise DataError(f"{where}: {column} is {value}, expected a frame number >= 0")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    log.warning("%s: %s is %r, not a frame number; read as unknown (NA)", where, column, value)
    return None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def rows_text(rows: list[int], shown: int = 5) -> str:
    """`row 4` / `rows 4, 7, 9 (+12 more)`: the first rows of a list, for one log line."""
    head = ", ".join(str(r) for r in rows[:shown])
    more = f" (+{len(rows) - shown} more)" if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {head}{more}"


class BlankFrames:
    """Blank onset/apex/offset cells of one sheet, read as unknown and logged once for the file.

    One WARNING per file (count and first rows per column), not one per row: a sheet that leaves
    a column empty would otherwise flood the log, and staying silent hides it.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.rows: dict[str, list[int]] = {}

    def read(self, value: Any, row_no: int, where: str, column: str) -> int | None:
        """`frame_number` of a cell; a blank cell is noted and read as unknown (None)."""
        if _is_blank(value):
            self.rows.setdefault(column, []).append(row_no)
            return None
        return frame_number(value, where, column)

    def report(self) -> None:
        if not self.rows:
            return
        total = sum(len(r) for r in self.rows.values())
        parts = "; ".join(f"{col} on {rows_text(rows)}" for col, rows in self.rows.items())
        log.warning("%s: %d blank frame cell(s) read as unknown (NA): %s", self.label, total, parts)


def check_order(rec: Record) -> None:
    """Onset <= apex <= offset wherever known."""
    known = [
        (n, v)
        for n, v in (("onset", rec.onset), ("apex", rec.apex), ("offset", rec.offset))
        if v is not None
    ]
    for (n1, v1), (n2, v2) in zip(known, known[1:]):
        if v1 > v2:
            raise DataError(
                f"{rec.where}: {n1} {v1} comes after {n2} {v2}; expected onset <= apex <= offset"
            )


def subject_number(value: Any, where: str, column: str = "Subject") -> int:
    """`'01'`, `1`, `'sub01'`, `'s1'`, `'006'` → the subject's number."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    m = re.fullmatch(r"(?:sub|s)?0*(\d+)", str(value).strip(), flags=re.IGNORECASE)
    if not m:
        raise DataError(f"{where}: {column} is {value!r}, expected a subject number such as 01")
    return int(m.group(1))


def text_cell(value: Any, where: str, column: str) -> str:
    """A required text cell (numbers written as numbers are accepted as their digits)."""
    if value is None:
        raise DataError(f"{where}: {column} is empty")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def require_root(root: Path | None, dataset: str, key: str = "data.root") -> Path:
    """The media root, which must be given and exist."""
    if root is None:
        raise ConfigError(f"{key}: {dataset} needs the media root folder, got none")
    if not root.is_dir():
        raise DataError(f"{key}: {dataset} media root {root} is not a folder")
    return root


# ----------------------------------------------------------------------------------- finish
def finish(records: list[Record], *, check_media: bool) -> pd.DataFrame:
    """Records → the sample table: unique ids, checked media (optional), sorted by sample_id."""
    seen: dict[str, Record] = {}
    for rec in records:
        check_order(rec)
        first = seen.get(rec.sample_id)
        if first is not None:
            raise DataError(
                f"duplicate sample id {rec.sample_id}: {first.where} and {rec.where} "
                "describe the same clip"
            )
        seen[rec.sample_id] = rec
    paths: dict[str, str | None] = {}
    for sid in sorted(seen):
        rec = seen[sid]
        if not check_media:
            paths[sid] = None
        elif rec.media is None:
            raise ConfigError(
                f"{rec.where}: no media location for {sid}; the media root is not set"
            )
        elif rec.kind == "video":
            paths[sid] = str(check_video(rec.media, rec.where))
        else:
            paths[sid] = str(check_frames(rec.media, rec.where, rec.onset, rec.apex, rec.offset))
    return to_frame([seen[s] for s in sorted(seen)], [paths[s] for s in sorted(seen)])


def to_frame(records: list[Record], paths: list[str | None]) -> pd.DataFrame:
    """Build the table with the contract's dtypes (Int64 frames, list AUs, object paths)."""
    data: dict[str, Any] = {
        "sample_id": [r.sample_id for r in records],
        "dataset": [r.dataset for r in records],
        "subject": [r.subject for r in records],
        "clip": [r.clip for r in records],
        "onset": pd.array([r.onset for r in records], dtype="Int64"),
        "apex": pd.array([r.apex for r in records], dtype="Int64"),
        "offset": pd.array([r.offset for r in records], dtype="Int64"),
        "aus": pd.Series([list(r.aus) for r in records], dtype=object),
        "aus_raw": [r.aus_raw for r in records],
        "emotion": [r.emotion for r in records],
        "path": pd.Series(paths, dtype=object),
        "where": [r.where for r in records],
    }
    extra_keys = sorted({k for r in records for k in r.extra})
    for key in extra_keys:
        data[key] = [r.extra.get(key) for r in records]
    frame = pd.DataFrame(data)
    for col in ("sample_id", "dataset", "subject", "clip", "aus_raw", "emotion", "where"):
        frame[col] = frame[col].astype(str)
    return frame.reset_index(drop=True)
