"""Invalid annotation rows, collected in one pass and reported together.

Official sheets carry errata (an offset of 0, onset after apex, a date where AUs belong). A
reader that stopped at the first one would make the user edit the official file by hand, one row
per run; instead every row problem of a read is collected (`RowCollector`) and reported at once
(`InvalidRows`: file, sheet, row, what is wrong, what was expected). `load_samples` then applies
`data.invalid_rows`: `error` raises that report, `exclude` reads the other rows and keeps the
problems as the sample table's metadata (`EXCLUDED_ATTR`), so the dry run, plan.json, summary.md
and the report list them.

Problems of the files themselves (a missing file, no header, a missing column) and of the media
are no row problems: they stop the read as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mer.errors import DataError

#: Key of the sample table's `attrs` that lists the excluded rows (`RowProblem.as_dict` each).
EXCLUDED_ATTR = "excluded_rows"
INVALID_ROWS = ("error", "exclude")  # data.invalid_rows
HINT = "data.invalid_rows: exclude reads the other rows and lists these"


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one annotation row, and what was expected there."""

    where: str  # how the user finds the row: "FILE, sheet 'S', row N" / "FILE, line N"
    what: str  # what is wrong
    expected: str = ""  # what was expected ("" when `what` says it)
    sample_id: str | None = None  # the clip the row describes, when it could be read
    file: str | None = None
    sheet: str | None = None
    row: int | None = None  # the file's own row (or line) number
    sep: str = ", "  # between `what` and "expected ..." in the message

    def text(self) -> str:
        """`where: what, expected ...` (the message a single problem always had)."""
        expected = f"{self.sep}expected {self.expected}" if self.expected else ""
        return f"{self.where}: {self.what}{expected}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for plan.json and the prepared sample table."""
        out = asdict(self)
        out.pop("sep")
        return out


class RowError(DataError):
    """One row's problem, raised by a cell parser. A reader that collects its rows' problems
    catches it per row (`RowCollector.row`); one that does not lets it stop the read, with the
    same message as before."""

    def __init__(self, where: str, what: str, expected: str = "", *, sep: str = ", ") -> None:
        self.problem = RowProblem(where=where, what=what, expected=expected, sep=sep)
        super().__init__(self.problem.text())


class InvalidRows(DataError):
    """Every row problem of one read (`problems`) and the records of the valid rows."""

    def __init__(self, problems: Sequence[RowProblem], records: Sequence[Any] = ()) -> None:
        self.problems = list(problems)
        self.records = list(records)
        super().__init__(report(self.problems))


def rows_text(rows: list[int], shown: int = 5) -> str:
    """`row 4` / `rows 4, 7, 9 (+12 more)`: the first rows of a list, for one log line."""
    head = ", ".join(str(r) for r in rows[:shown])
    more = f" (+{len(rows) - shown} more)" if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {head}{more}"


def report(problems: Sequence[RowProblem], hint: str = HINT) -> str:
    """One problem: its message (plus the hint); several: a count, then one line each."""
    if len(problems) == 1:
        return f"{problems[0].text()} ({hint})"
    lines = [f"{len(problems)} invalid annotation rows ({hint}):"]
    lines += [f"  - {p.text()}" for p in problems]
    return "\n".join(lines)


@dataclass
class RowContext:
    """The row being read: a reader sets `sample_id` once it knows it, so that a problem found
    later in the row names the clip."""

    where: str
    file: str | None = None
    sheet: str | None = None
    row: int | None = None
    sample_id: str | None = None


@dataclass
class RowCollector:
    """The row problems of one read. Wrap each row in `with collector.row(...)`: a `RowError`
    raised inside is recorded and the row skipped; `done(records)` returns the records or raises
    `InvalidRows` with them."""

    problems: list[RowProblem] = field(default_factory=list)

    @contextlib.contextmanager
    def row(
        self, where: str, *, file: Any = None, sheet: str | None = None, row: int | None = None
    ) -> Iterator[RowContext]:
        ctx = RowContext(where, None if file is None else str(file), sheet, row)
        try:
            yield ctx
        except RowError as exc:
            self.add(exc.problem, ctx)

    def add(self, problem: RowProblem, ctx: RowContext | None = None) -> None:
        if ctx is not None:
            problem = RowProblem(
                where=problem.where,
                what=problem.what,
                expected=problem.expected,
                sample_id=problem.sample_id or ctx.sample_id,
                file=problem.file or ctx.file,
                sheet=problem.sheet or ctx.sheet,
                row=problem.row if problem.row is not None else ctx.row,
                sep=problem.sep,
            )
        self.problems.append(problem)

    def extend(self, problems: Sequence[RowProblem]) -> None:
        self.problems.extend(problems)

    def done(self, records: list[Any]) -> list[Any]:
        if self.problems:
            raise InvalidRows(self.problems, records)
        return records


def collected(read: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], list[RowProblem]]:
    """(records, row problems) of a reader call: the problems it collected instead of raising."""
    try:
        return list(read(*args, **kwargs)), []
    except InvalidRows as exc:
        return exc.records, exc.problems
