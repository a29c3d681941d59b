"""One JSON helper for every file `mer` writes or reads: plain data, text, reading with errors
that name the file.

Results hold numpy scalars, pandas missing values, paths and non-finite floats; JSON has none of
them. `to_plain` turns them into what JSON has (numbers, strings, None: a NaN or infinite score
is "no value", written as null, never as the non-standard NaN token).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from mer.errors import DataError
from mer.util.files import write_text_atomic


def to_plain(obj: Any) -> Any:
    """`obj` as JSON-ready data: mappings (keys as strings), lists, str, int, float, bool, None.

    numpy scalars and arrays become Python numbers and lists, NaN/inf and pandas' missing values
    None, paths and anything else without a JSON form their text."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    # pandas only where it was loaded already: no object can be pandas' before (start-up)
    pd = sys.modules.get("pandas")
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray)) or (
        pd is not None and isinstance(obj, pd.Series)
    ):
        return [to_plain(v) for v in (obj.tolist() if hasattr(obj, "tolist") else obj)]
    if isinstance(obj, np.generic):
        return to_plain(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return int(obj)
    if pd is not None and (obj is pd.NA or obj is pd.NaT):
        return None
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 1, sort_keys: bool = False) -> str:
    """`obj` (converted with `to_plain`) as JSON text."""
    return json.dumps(to_plain(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> Path:
    """`obj` as a JSON file (atomically, ending in a newline)."""
    return write_text_atomic(path, dumps(obj, indent=indent) + "\n")


def read_json(path: str | Path, *, what: str = "") -> Any:
    """A JSON file's content; DataError naming the file (and `what` it holds) when it is
    missing or not valid JSON."""
    path = Path(path)
    about = f" ({what})" if what else ""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file{about}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON{about} ({exc})") from None
