"""Atomic file writes: a reader (a resumed driver, `mer report` on a running sweep) sees the old
file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    The folder is created when missing; on any failure the temporary file is removed and the
    error raised, leaving `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_csv_atomic(path: str | Path, frame: Any) -> Path:
    """A DataFrame as CSV without its index, written atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))
