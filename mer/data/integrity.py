"""What the manifest says about each file of a cache folder, and the checks made when a cache is
opened: a damaged cache must stop with "delete it and re-prepare" and the path, never train on
the wrong arrays (a deleted regions.npy once made branch B silently use the whole frames) or end
in a raw traceback (a truncated array once did).

The manifest's `files` records, for each array: shape, dtype, byte size and sha256, and for the
branch arrays the sha256 of each clip's rows (`rows`, 16 hex digits each); for samples.json its
size and sha256. `manifest_sha256` covers the manifest itself (class names, counts, exclusions).

Checks when a cache is opened (`check`):

- always: the manifest's own digest; every file there, its size, and each array's shape and
  dtype as its header says; the digests of the small files (samples.json, frame numbers,
  landmarks: a few MB at most); the digests of a sample of clips in each branch array
  (`SAMPLE_ROWS`: first, middle and last clip): about 3 clips read, whatever the dataset size;
- `verify="full"` (`mer prepare --verify`): every byte of every file.

Caches built before these records existed have only their shapes in the manifest: their shapes,
sizes and files are checked, not their bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

import numpy as np

from mer.errors import DataError
from mer.util.files import naming

MANIFEST = "manifest.json"
BRANCH_FILES = ("global.npy", "regions.npy")
SAMPLE_ROWS = 3
ROW_DIGEST = 16
CHUNK = 1 << 22


def damaged(folder: Path, problem: str) -> DataError:
    return DataError(
        f"{problem}; the prepared data in {folder} is damaged: delete it and re-prepare "
        "(`mer prepare`, or any run, builds it again)"
    )


# --------------------------------------------------------------------------------- writing
class ArrayWriter:
    """An .npy file written clip by clip with plain writes (a full disk raises an OSError
    naming the file, where a memory map would die with SIGBUS), hashed as it is written."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any, *, rows: bool = False):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self._sha = hashlib.sha256()
        self._rows: list[str] | None = [] if rows else None
        self._written = 0
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        buf = _Tee(self._sha)
        np.lib.format.write_array_header_1_0(buf, header)
        with naming(self.path):
            self._fh: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            self._fh.write(buf.data)
        self._bytes = len(buf.data)

    def write(self, rows: np.ndarray) -> None:
        """The next clip(s): `rows` of shape shape[1:] (one) or (k, *shape[1:])."""
        arr = np.ascontiguousarray(rows, dtype=self.dtype)
        if arr.shape == self.shape[1:]:
            arr = arr[None]
        if arr.shape[1:] != self.shape[1:]:
            raise ValueError(
                f"{self.path}: rows of shape {arr.shape[1:]}, expected {self.shape[1:]}"
            )
        for row in arr:
            data = row.tobytes()
            with naming(self.path):
                self._fh.write(data)
            self._sha.update(data)
            if self._rows is not None:
                self._rows.append(hashlib.sha256(data).hexdigest()[:ROW_DIGEST])
            self._bytes += len(data)
            self._written += 1

    def close(self) -> dict[str, Any]:
        """Finish the file; returns its manifest record."""
        with naming(self.path):
            self._fh.close()
        if self._written != self.shape[0]:
            raise ValueError(f"{self.path}: {self._written} rows written, {self.shape[0]} expected")
        record: dict[str, Any] = {
            "shape": list(self.shape),
            "dtype": self.dtype.str,
            "bytes": self._bytes,
            "sha256": self._sha.hexdigest(),
        }
        if self._rows is not None:
            record["rows"] = self._rows
        return record

    def abort(self) -> None:
        self._fh.close()


class _Tee:
    """A write-only file object that keeps what is written and hashes it."""

    def __init__(self, sha: Any):
        self.data = b""
        self._sha = sha

    def write(self, data: bytes) -> None:
        self.data += data
        self._sha.update(data)


def save_array(path: Path, arr: np.ndarray) -> dict[str, Any]:
    """A small array as .npy (plain writes); returns its record."""
    writer = ArrayWriter(path, arr.shape, arr.dtype)
    try:
        if len(arr):
            writer.write(arr)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def bytes_record(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own digest."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -------------------------------------------------------------------------------- checking
def read_header(path: Path, folder: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from an .npy header; `damaged` when it is not one."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(folder, f"{path}: not a readable .npy array ({exc})") from None
    if fortran:
        raise damaged(folder, f"{path}: Fortran-ordered array, mer writes C order")
    return tuple(int(d) for d in shape), np.dtype(dtype), offset


def check_array_file(
    path: Path, folder: Path, shape: tuple[int, ...] | None, dtype: str | None
) -> tuple[tuple[int, ...], np.dtype, int]:
    """The file is there, its header says `shape`/`dtype` (where given) and its size is the
    header's plus the data's (a truncated or extended file fails here)."""
    if not path.is_file():
        raise damaged(folder, f"{path}: missing (the manifest lists it)")
    got_shape, got_dtype, offset = read_header(path, folder)
    if shape is not None and tuple(shape) != got_shape:
        raise damaged(folder, f"{path}: shape {got_shape}, the manifest says {tuple(shape)}")
    if dtype is not None and np.dtype(dtype) != got_dtype:
        raise damaged(folder, f"{path}: dtype {got_dtype}, the manifest says {np.dtype(dtype)}")
    expected = offset + int(np.prod(got_shape, dtype=np.int64)) * got_dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise damaged(folder, f"{path}: {what} ({size} bytes, expected {expected})")
    return got_shape, got_dtype, offset


def _file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def sample_rows(n: int) -> list[int]:
    """The clips whose digests are checked by default: first, middle, last."""
    return sorted({0, n // 2, n - 1}) if n else []


def _check_rows(path: Path, folder: Path, rec: dict[str, Any], rows: list[int]) -> None:
    shape, dtype = tuple(rec["shape"]), np.dtype(rec["dtype"])
    _, _, offset = read_header(path, folder)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    with open(path, "rb") as fh:
        for i in rows:
            fh.seek(offset + i * row_bytes)
            got = hashlib.sha256(fh.read(row_bytes)).hexdigest()[:ROW_DIGEST]
            if got != rec["rows"][i]:
                raise damaged(folder, f"{path}: clip {i} differs from what was written (digest)")


def check(folder: Path, manifest: dict[str, Any], verify: str = "sample") -> None:
    """Check a cache folder against its manifest (module doc); DataError `damaged` otherwise.
    `verify`: "sample" (the default) or "full"."""
    if verify not in ("sample", "full"):
        raise ValueError(f"verify: expected 'sample' or 'full', got {verify!r}")
    want = manifest.get("manifest_sha256")
    if want is not None and manifest_digest(manifest) != want:
        raise damaged(
            folder,
            f"{folder / 'manifest.json'}: edited since it was written (its digest differs: "
            "class names, counts or file records changed)",
        )
    files = manifest.get("files")
    if files is None:
        _check_legacy(folder, manifest)
        return
    for name, rec in files.items():
        path = folder / name
        if name.endswith(".npy"):
            check_array_file(path, folder, tuple(rec["shape"]), rec["dtype"])
        elif not path.is_file():
            raise damaged(folder, f"{path}: missing (the manifest lists it)")
        size = path.stat().st_size
        if size != rec["bytes"]:
            raise damaged(folder, f"{path}: {size} bytes, the manifest says {rec['bytes']}")
        if name not in BRANCH_FILES or verify == "full":
            if _file_sha(path) != rec["sha256"]:
                raise damaged(folder, f"{path}: content differs from what was written (sha256)")
        elif rec.get("rows"):
            _check_rows(path, folder, rec, sample_rows(int(rec["shape"][0])))
    arrays = manifest.get("arrays") or {}
    if arrays.get("regions") is not None and "regions.npy" not in files:
        raise damaged(folder, f"{folder / MANIFEST}: regions.npy is not listed")


def _check_legacy(folder: Path, manifest: dict[str, Any]) -> None:
    """A cache built before the file records: shapes from `arrays`, sizes from the headers."""
    arrays = manifest.get("arrays") or {}
    g = arrays.get("global")
    check_array_file(folder / "global.npy", folder, None if g is None else tuple(g), "uint8")
    r = arrays.get("regions")
    if r is not None:
        check_array_file(folder / "regions.npy", folder, tuple(r), "uint8")
    for name in ("frame_numbers.npy",) + (("landmarks.npy",) if arrays.get("landmarks") else ()):
        check_array_file(folder / name, folder, None, None)
    if not (folder / "samples.json").is_file():
        raise damaged(folder, f"{folder / 'samples.json'}: missing")
