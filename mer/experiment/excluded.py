"""Annotation rows a sweep left out (`data.invalid_rows: exclude`): collected from the sample
tables (their `attrs`, mer.datasets.problems), kept in plan.json and rendered for the dry run,
summary.md and the report, so that a result never silently rests on fewer clips than its sheet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from mer.datasets.problems import EXCLUDED_ATTR


def excluded_rows(tables: Iterable[pd.DataFrame]) -> list[dict[str, Any]]:
    """The excluded rows of every table, each once (variants often share a sheet), in order."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for table in tables:
        for row in table.attrs.get(EXCLUDED_ATTR) or []:
            key = (str(row.get("where")), str(row.get("what")))
            if key not in seen:
                seen.add(key)
                out.append(dict(row))
    return out


def plan_section(tables: Iterable[pd.DataFrame]) -> dict[str, Any]:
    """What plan.json holds under `excluded_rows`: the count and the rows."""
    rows = excluded_rows(tables)
    return {"count": len(rows), "rows": rows}


def row_text(row: Mapping[str, Any]) -> str:
    """`FILE, sheet 'S', row N: what is wrong; expected ...` (the sample id when known)."""
    expected = f"; expected {row['expected']}" if row.get("expected") else ""
    clip = f" [{row['sample_id']}]" if row.get("sample_id") else ""
    return f"{row.get('where')}: {row.get('what')}{expected}{clip}"


def excluded_lines(plan: Mapping[str, Any], *, markdown: bool = False) -> list[str]:
    """The excluded rows of a plan (plan.json's content, or `SweepPlan.to_json()`) as lines:
    a heading with the count, then one line per row; nothing when none was excluded."""
    section = plan.get("excluded_rows") or {}
    rows = section.get("rows") or []
    if not rows:
        return []
    title = (
        f"Excluded annotation rows ({len(rows)}, data.invalid_rows: exclude): the sheet's "
        "invalid rows, left out of every fold"
    )
    if markdown:
        return [f"## {title}", "", *(f"- {row_text(r)}" for r in rows), ""]
    return [f"{title}:", *(f"  - {row_text(r)}" for r in rows)]


def excluded_note(plan: Mapping[str, Any]) -> list[str]:
    """The same as one note (the report's notes are one line each); nothing when none."""
    lines = excluded_lines(plan)
    if not lines:
        return []
    return [lines[0] + " " + "; ".join(line.strip().removeprefix("- ") for line in lines[1:])]
