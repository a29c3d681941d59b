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


def write_bytes_unique(path: Path, data: bytes | memoryview, *, prefix: str) -> None:
    """Write `data` to a hidden temporary file beside `path` named by `tempfile.mkstemp` (unique
    even when several processes write the same path at once, as clip and landmark caches do),
    then rename it over `path`. The folder must exist; the temporary file never outlives a
    failure. The file is created as mkstemp creates it (mode 0600)."""
    # lazy: tempfile (shutil, random) adds a third to `mer --help`, which imports this module
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`text` (UTF-8) written atomically, as `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode())


def write_csv_atomic(path: str | Path, frame: Any) -> Path:
    """A DataFrame as CSV without its index, written atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))
