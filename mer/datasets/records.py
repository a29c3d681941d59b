"""The record every reader produces, cell parsers, and the shared finish: ids, frame order,
media, table. Cell parsers raise `RowError` (mer.datasets.problems), which a reader collects per
row; `finish` adds the problems found across rows and applies `data.invalid_rows`."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mer.datasets.media_check import check_frames, check_video
from mer.datasets.problems import InvalidRows, RowError, RowProblem, rows_text
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
    #: file, sheet and row of the annotation row (`Table.origin`), for the problem list
    origin: dict[str, Any] = field(default_factory=dict)

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
        raise RowError(where, f"{column} is {value!r}", "a frame number")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not value.is_integer():
            raise RowError(where, f"{column} is {value!r}", "a whole frame number")
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise RowError(where, f"{column} is {value}", "a frame number >= 0")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    log.warning("%s: %s is %r, not a frame number; read as unknown (NA)", where, column, value)
    return None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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


def problem(rec: Record, what: str, expected: str = "", sep: str = ", ") -> RowProblem:
    """A problem of the row `rec` was read from."""
    return RowProblem(
        where=rec.where,
        what=what,
        expected=expected,
        sample_id=rec.sample_id,
        file=rec.origin.get("file"),
        sheet=rec.origin.get("sheet"),
        row=rec.origin.get("row"),
        sep=sep,
    )


def repair_apex(rec: Record) -> str | None:
    """An apex outside a known onset..offset is read as unknown (NA), the one explainable
    repair (coders mark the apex 0 or one frame past the offset); returns what was repaired."""
    on, ap, off = rec.onset, rec.apex, rec.offset
    if on is None or ap is None or off is None or on > off or on <= ap <= off:
        return None
    rec.apex = None
    return f"apex {ap} outside onset..offset {on}..{off}"


def order_problem(rec: Record) -> RowProblem | None:
    """Onset <= apex <= offset wherever known; an offset of 0 after a later onset means that no
    offset was coded (CAS(ME)^2), said so."""
    if rec.offset == 0 and rec.onset:
        return problem(
            rec,
            f"offset is 0, before onset {rec.onset} (no offset coded)",
            "onset <= apex <= offset",
            sep="; ",
        )
    known = [
        (n, v)
        for n, v in (("onset", rec.onset), ("apex", rec.apex), ("offset", rec.offset))
        if v is not None
    ]
    for (n1, v1), (n2, v2) in zip(known, known[1:]):
        if v1 > v2:
            return problem(rec, f"{n1} {v1} comes after {n2} {v2}", "onset <= apex <= offset", "; ")
    return None


def check_order(rec: Record) -> None:
    """Onset <= apex <= offset wherever known (RowError otherwise)."""
    found = order_problem(rec)
    if found is not None:
        raise RowError(found.where, found.what, found.expected, sep=found.sep)


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
        raise RowError(where, f"{column} is {value!r}", "a subject number such as 01")
    return int(m.group(1))


def text_cell(value: Any, where: str, column: str) -> str:
    """A required text cell (numbers written as numbers are accepted as their digits)."""
    if value is None:
        raise RowError(where, f"{column} is empty", "a value")
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
def finish(
    records: list[Record],
    *,
    check_media: bool,
    problems: list[RowProblem] | None = None,
    invalid_rows: str = "error",
) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Records → (the sample table, the rows left out): unique ids, onset <= apex <= offset,
    checked media (optional), sorted by sample_id.

    `problems`: the row problems the reader collected. Those found here (order, duplicate ids)
    join them; `invalid_rows` "error" raises them all at once (InvalidRows), "exclude" leaves
    those rows out and returns them. An apex outside onset..offset is read as unknown with one
    WARNING naming the rows. Media problems are collected too and raised together, whatever
    `invalid_rows` says (they are no sheet errata: item 6's `data.on_bad_clip` is for media).
    """
    found = list(problems or [])
    repaired: list[str] = []
    bad: set[int] = set()
    by_id: dict[str, list[Record]] = {}
    for rec in records:
        fixed = repair_apex(rec)
        if fixed is not None:
            repaired.append(f"{rec.where} ({fixed})")
        order = order_problem(rec)
        if order is not None:
            found.append(order)
            bad.add(id(rec))
        by_id.setdefault(rec.sample_id, []).append(rec)
    for sid, same in by_id.items():
        if len(same) < 2:
            continue
        for k, rec in enumerate(same):
            other = same[1] if k == 0 else same[0]
            pair = (other, rec) if k else (rec, other)
            found.append(
                problem(
                    rec,
                    f"duplicate sample id {sid}: {pair[0].where} and {pair[1].where} describe "
                    "the same clip",
                    "one row per clip",
                    sep="; ",
                )
            )
            bad.add(id(rec))
    if repaired:
        log.warning(
            "%d row(s) with the apex outside onset..offset: apex read as unknown (NA): %s",
            len(repaired), "; ".join(repaired),
        )  # fmt: skip
    if found and invalid_rows != "exclude":
        raise InvalidRows(found)
    if found:
        log.warning(
            "data.invalid_rows exclude: %d annotation row(s) left out:\n%s",
            len(found), "\n".join(f"  - {p.text()}" for p in found),
        )  # fmt: skip
    kept = {r.sample_id: r for r in records if id(r) not in bad}
    return _checked_table([kept[s] for s in sorted(kept)], check_media), found


MEDIA_SHOWN = 10  # media problems listed in one error


def _checked_table(records: list[Record], check_media: bool) -> pd.DataFrame:
    """The table with each clip's media checked (when asked); every media problem at once."""
    paths: list[str | None] = []
    errors: list[str] = []
    for rec in records:
        if not check_media:
            paths.append(None)
            continue
        if rec.media is None:
            raise ConfigError(
                f"{rec.where}: no media location for {rec.sample_id}; the media root is not set"
            )
        try:
            if rec.kind == "video":
                paths.append(str(check_video(rec.media, rec.where)))
            else:
                paths.append(
                    str(check_frames(rec.media, rec.where, rec.onset, rec.apex, rec.offset))
                )
        except DataError as exc:
            errors.append(str(exc))
            paths.append(None)
    if len(errors) == 1:
        raise DataError(errors[0])
    if errors:
        more = len(errors) - MEDIA_SHOWN
        raise DataError(
            f"{len(errors)} of {len(records)} clips' media are missing or do not match their "
            "annotation:\n"
            + "\n".join(f"  - {e}" for e in errors[:MEDIA_SHOWN])
            + (f"\n  (+{more} more)" if more > 0 else "")
        )
    return to_frame(records, paths)


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
