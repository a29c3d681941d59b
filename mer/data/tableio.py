"""The prepared sample table on disk: JSON with its dtypes, lists kept (no pyarrow or pickle
needed to read it back, and nothing executed when reading a cache someone else wrote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer.util.files import naming
from mer.util.jsonio import dumps, read_json, to_plain


def table_bytes(df: pd.DataFrame) -> bytes:
    """The file's content (what the manifest's digest covers)."""
    body = {
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(df[c].dtype) for c in df.columns},
        "data": {str(c): to_plain(df[c].tolist()) for c in df.columns},
        "attrs": to_plain(df.attrs),  # the rows left out (mer.datasets.problems)
    }
    return dumps(body, indent=None).encode()


def write_table(df: pd.DataFrame, path: Path) -> None:
    """A DataFrame as JSON with its dtypes (an OSError names the file)."""
    with naming(path):
        Path(path).write_bytes(table_bytes(df))


def read_table(path: Path) -> pd.DataFrame:
    body = read_json(path, what="a prepared sample table")
    cols: dict[str, Any] = {}
    for c in body["columns"]:
        values, dtype = body["data"][c], body["dtypes"][c]
        if dtype == "object":
            cols[c] = pd.Series(values, dtype=object)
            continue
        try:
            cols[c] = pd.Series(pd.array(values, dtype=dtype))
        except (TypeError, ValueError):
            cols[c] = pd.Series(values, dtype=object)
    table = pd.DataFrame(cols, columns=body["columns"])
    table.attrs.update(body.get("attrs") or {})  # absent from tables cached before it existed
    return table
