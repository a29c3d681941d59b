"""Atomic file writes: a reader (a resumed driver, `mer report` on a running sweep) sees the old
file or the new one, never half of one. And OSErrors that say which file: a write that fails for
lack of space raises `[Errno 28] No space left on device` without a file name, which tells the
user nothing about which disk is full (`naming`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Re-raise an OSError that names no file as the same error naming `path`."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    The folder is created when missing; on any failure the temporary file is removed and the
    error raised (naming the file), leaving `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with naming(path):
            tmp.write_bytes(data)
            tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`text` (UTF-8) written atomically, as `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode())


def write_csv_atomic(path: str | Path, frame: Any) -> Path:
    """A DataFrame as CSV without its index, written atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))
