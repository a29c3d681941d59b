"""Per-clip results of a build, kept as each clip finishes: a killed or failed prepare loses at
most the clips that were being decoded, and the next run decodes only what is missing.

File: `{data.cache_dir}/.clips/{config}/{clip}.npz` (uncompressed) holding the clip's branch
arrays, frame numbers, landmarks and a JSON `meta` (region, face statistics). `config` is the
hash of the data settings that determine the arrays (mer.data.keys.key_config); `clip` hashes the
clip's job (media path, onset, apex, offset, AUs) and its media's identity (paths, sizes and
mtimes of its frames or video, and its landmark file), so touching one clip's files redoes that
clip only. Written to a temporary file and renamed into place: a file that exists is whole. The
build copies the results into the cache folder and then removes them (mer.data.assemble).

Clip failures (mer.errors.DataError from the pipeline: unreadable media, no face, a window with
no frames) are returned, not raised, so that every clip is tried and all failures are reported
together; any other error (a bug, a full disk) stops the build at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer.config import DataConfig, config_hash
from mer.data.clips import ClipArrays, ClipJob, ClipSettings, FaceStats, process_clip
from mer.data.keys import CACHE_VERSION, key_config
from mer.errors import DataError
from mer.util.files import naming, write_bytes_unique

log = logging.getLogger(__name__)

FOLDER = ".clips"
MEMBERS = ("global", "numbers", "meta")  # always there (regions, landmarks: when used)


def config_folder(data_cfg: DataConfig) -> Path:
    """Where this data config's per-clip results live."""
    root = Path(data_cfg.cache_dir).expanduser()
    return root / FOLDER / config_hash(key_config(data_cfg), 16)


@dataclass
class StoredClip:
    """One clip's result as stored (arrays read on access)."""

    global_clip: np.ndarray | None  # None when loaded without arrays
    region_clip: np.ndarray | None
    numbers: np.ndarray
    landmarks: np.ndarray | None
    region: str
    face_frames: int
    stats: FaceStats | None


class ClipStore:
    """The per-clip results of one data config (`config_folder`)."""

    def __init__(self, folder: Path, data_cfg: DataConfig):
        self.folder = Path(folder)
        self._config = config_hash(key_config(data_cfg), 32)

    def key(self, job: ClipJob, media: str) -> str:
        """Key of one clip's result: its job and its media's identity (see the module doc)."""
        body = {
            "version": CACHE_VERSION,
            "config": self._config,
            "media": media,
            "job": [job.path, job.onset, job.apex, job.offset, list(job.aus)],
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def file(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def has(self, key: str) -> bool:
        """Whether a whole result is stored (an unreadable one is removed: decoded again)."""
        path = self.file(key)
        if not path.is_file():
            return False
        try:
            with np.load(path) as z:
                whole = set(MEMBERS) <= set(z.files)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("%s: unreadable per-clip result (%s); decoding the clip again", path, exc)
            whole = False
        if not whole:
            with contextlib.suppress(OSError):
                path.unlink()
        return whole

    def load(
        self, key: str, *, arrays: bool = True, redo: tuple[ClipJob, ClipSettings] | None = None
    ) -> StoredClip:
        """One clip's result; `arrays` False reads only its frame numbers, landmarks and meta
        (the branch arrays are read one clip at a time when the cache is written). `redo`: the
        clip's job and settings, to prepare it again when its result is gone (another build of
        this config, for other sources, shared it and finished first)."""
        path = self.file(key)
        if redo is not None and not path.is_file():
            log.info("%s: per-clip result gone; preparing the clip again", path)
            error = prepare_clip(redo[0], redo[1], str(path))
            if error is not None:
                raise DataError(error)
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                out = StoredClip(
                    global_clip=z["global"] if arrays else None,
                    region_clip=z["regions"] if arrays and "regions" in z.files else None,
                    numbers=z["numbers"],
                    landmarks=z["landmarks"] if "landmarks" in z.files else None,
                    region=str(meta["region"]),
                    face_frames=int(meta["face_frames"]),
                    stats=None if meta["stats"] is None else FaceStats(**meta["stats"]),
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            raise DataError(
                f"{path}: unreadable per-clip result ({exc}); it was removed, run again to "
                "decode that clip anew"
            ) from None
        return out

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(OSError):
                self.file(key).unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty
            self.folder.parent.rmdir()


def save(path: Path, out: ClipArrays) -> None:
    """Store one clip's result atomically (an OSError names the file)."""
    arrays: dict[str, Any] = {"global": out.global_clip, "numbers": out.numbers}
    if out.region_clip is not None:
        arrays["regions"] = out.region_clip
    if out.landmarks is not None:
        arrays["landmarks"] = out.landmarks
    meta = {
        "region": out.region,
        "face_frames": out.face_frames,
        "stats": None if out.stats is None else asdict(out.stats),
    }
    arrays["meta"] = np.asarray(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        write_bytes_unique(path, buf.getbuffer(), prefix=f".{path.stem}.")


def prepare_clip(job: ClipJob, s: ClipSettings, file: str) -> str | None:
    """Run one clip's pipeline and store its result in `file`: None when done, else the
    failure's message (the clip's id and annotation row first). Runs in worker processes."""
    try:
        out = process_clip(job, s)
    except DataError as exc:
        return str(exc)
    save(Path(file), out)
    return None


def run(
    todo: list[tuple[int, ClipJob, Path]], s: ClipSettings, workers: int, bar: Any = None
) -> dict[int, str]:
    """Prepare the clips `todo` (row, job, result file), in this process or in `workers`
    processes, storing each result as it finishes; returns the failures by row."""
    failures: dict[int, str] = {}
    for row, error in _outcomes(todo, s, workers):
        if error is not None:
            failures[row] = error
        if bar is not None:
            bar.update()
    return failures


def _outcomes(
    todo: list[tuple[int, ClipJob, Path]], s: ClipSettings, workers: int
) -> Iterator[tuple[int, str | None]]:
    if workers <= 1 or len(todo) <= 1:
        for row, job, file in todo:
            yield row, prepare_clip(job, s, str(file))
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    pending: dict[Future, int] = {}
    queue = iter(todo)
    try:
        while True:
            for row, job, file in queue:  # a few clips ahead of the workers, not all of them
                pending[pool.submit(prepare_clip, job, s, str(file))] = row
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
