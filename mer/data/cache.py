"""Prepared data: every clip decoded once into uint8 arrays, cached by content, reused by trials.

`prepare_data(data_cfg)` reads the sample table (annotations + label scheme), runs the per-clip
pipeline of mer.data.clips on every sample (decode once, select T frames, landmarks, branch A
whole frames and branch B region crops) and stores the arrays.

Cache folder `{data.cache_dir}/{key}/`:

    global.npy          (N, T, S, S, 3) uint8   branch A
    regions.npy         (N, T, S, S, 3) uint8   branch B (absent for policy `none`)
    frame_numbers.npy   (N, T) int64            chosen frame numbers (file numbers; video: 0-based)
    landmarks.npy       (N, T, 68, 2) float32   landmarks used for crops, NaN without a face
                                                (only when the policy uses landmarks; per_clip
                                                boxes: the clip's reference landmarks each frame)
    samples.json        the sample table (+ label, region, oracle_input, and the face coverage
                        columns of mer.data.faces.table) with dtypes
    manifest.json       written last: key, data config, source identity, counts (face coverage
                        included), the clips excluded and why, each file's shape, dtype, size
                        and digests (mer.data.integrity), versions, timing

One job a module: `sources` (what a config reads, the sample table), `keys` (the cache key),
`clips` (one clip's pipeline), `clipstore` (per-clip results kept as they finish: a killed
prepare continues where it stopped), `assemble` (the cache folder from them, failures and
exclusions), `integrity` (file records, the checks when a cache is opened), `budget` (disk and
memory estimates), `locking` (one builder per key, atomic publication), `listing` (`mer cache
list|clean`), `media_scan` (the dry run's media check).

Every clip is tried: the failures (unreadable media, no face with no_face: error, ...) are
reported together at the end (`data.on_bad_clip: error`, the default), or left out and listed
with their reason in the manifest, plan.json and the report (`exclude`). Face detections come
from the landmark cache (mer.data.faces.store) when another data config selected the same frames
with the same detector settings. Clips below `data.faces.min_coverage` are excluded at build
time (`on_low_coverage: exclude`), or, for `error` and `keep`, checked every time the cache is
used (they do not change the arrays, so the same cache serves both); `on_bad_clip` likewise.
`{data.cache_dir}/.coverage/{data key}.json` keeps the last coverage summary (and exclusions) of
each data config, which a dry run shows where it exists.

key = sha256 of (CACHE_VERSION, mer.config.config_hash of the data section without cache_dir and
without settings the chosen policy ignores, identity of the source files). The identity covers
every annotation file and every media file the samples use (frame files of a folder, a video
file, synthetic landmark files) by resolved path, size and mtime (not content: hashing gigabytes
of frames would cost as much as decoding them). So touching or replacing a frame makes a new
cache (only the touched clip is decoded again: the others' per-clip results are reused while the
build runs); moving the dataset to another path also does.

A cache is built in a temporary folder inside the cache dir and renamed into place atomically;
a writer that loses the race discards its copy and uses the winner's. A lock file, where the file
system supports it, makes a second preparer wait instead of building the same thing twice.
Before building, the bytes needed are estimated and a file system without them is refused with
the figure (mer.data.budget); a full disk met anyway stops with the file and the figures, and
nothing half-written is left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import DataConfig, config_hash, variant_config
from mer.data import assemble, budget, checks, clipstore, integrity, listing
from mer.data.faces import index as face_index
from mer.data.faces import table as face_table
from mer.data.keys import cache_key, key_config, legacy_changes, source_identity
from mer.data.locking import MANIFEST, file_lock, lock_path, publish, remove_stale
from mer.data.sources import (
    annotation_files,
    check_config,
    clip_jobs,
    load_samples_only,
    read_samples,
    synthetic_dir,
)
from mer.data.tableio import read_table, write_table
from mer.errors import DataError

log = logging.getLogger(__name__)

N_LANDMARKS = 68


@dataclass
class PreparedData:
    samples: pd.DataFrame  # sample table + label, region, oracle_input (+ face_frames); RangeIndex
    class_names: list[str]
    global_clips: np.ndarray  # (N, T, H, W, 3) uint8, usually a read-only memmap
    region_clips: np.ndarray | None  # (N, T, H, W, 3) uint8; None: branch B uses global_clips
    key: str
    path: Path | None
    oracle_input: bool  # branch-B regions chosen from ground-truth AUs (au_oracle)
    # clips left out, with their `reason` (low face coverage, or not preparable: the manifest)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    faces: dict[str, Any] = field(default_factory=dict)  # coverage summary (mer.data.faces.table)

    @property
    def branch_b(self) -> np.ndarray:
        return self.region_clips if self.region_clips is not None else self.global_clips


# ------------------------------------------------------------------------------------ load
def load_prepared(path: str | Path, *, verify: str = "sample") -> PreparedData:
    """Open a cache folder (arrays memory-mapped read-only: nothing is decoded), after checking
    it against its manifest (mer.data.integrity: shapes, sizes and a sample of digests;
    `verify="full"` reads every byte). A damaged cache says "delete and re-prepare"."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a prepared-data folder ({exc})") from None
    if not isinstance(manifest, dict) or not {"key", "class_names"} <= set(manifest):
        raise integrity.damaged(path, f"{path / MANIFEST}: not a prepared-data manifest")
    integrity.check(path, manifest, verify)
    try:
        samples = read_table(path / "samples.json")
    except (DataError, KeyError, TypeError) as exc:
        raise integrity.damaged(path, f"{path / 'samples.json'}: unreadable ({exc})") from None
    global_clips = np.load(path / "global.npy", mmap_mode="r")
    arrays = manifest.get("arrays") or {}
    region_file = path / "regions.npy"
    if arrays.get("regions") is not None or "regions" not in arrays:
        region_clips = np.load(region_file, mmap_mode="r") if region_file.exists() else None
    else:
        region_clips = None  # policy none: branch B is branch A
    if len(samples) != global_clips.shape[0]:
        raise integrity.damaged(
            path, f"{path}: {len(samples)} samples but {global_clips.shape[0]} clips in global.npy"
        )
    return PreparedData(
        samples=samples,
        class_names=list(manifest["class_names"]),
        global_clips=global_clips,
        region_clips=region_clips,
        key=manifest["key"],
        path=path,
        oracle_input=bool(manifest.get("oracle_input")),
        excluded=list(manifest.get("excluded", [])),
        faces=dict(manifest.get("faces", {})),
    )


def _check_reused(data: PreparedData, samples: pd.DataFrame, class_names: list[str]) -> None:
    """A reused cache stands for these annotations: the same classes, the same clips (less the
    ones it lists as excluded)."""
    assert data.path is not None
    if data.class_names != class_names:
        raise integrity.damaged(
            data.path,
            f"{data.path / MANIFEST}: class names {data.class_names}, but the label scheme gives "
            f"{class_names}",
        )
    gone = {str(e.get("sample_id")) for e in data.excluded}
    expected = [s for s in samples["sample_id"].astype(str) if s not in gone]
    if list(data.samples["sample_id"].astype(str)) != expected:
        raise integrity.damaged(
            data.path,
            f"{data.path / 'samples.json'}: its clips differ from the annotations' "
            f"({len(data.samples)} rows, {len(expected)} expected)",
        )


# ------------------------------------------------------------------------------- prepare
def prepare_data(
    data_cfg: DataConfig,
    *,
    progress: bool = True,
    workers: int = 1,
    verify: bool = False,
    used_by: str | None = None,
) -> PreparedData:
    """Build the cache for `data_cfg`, or reuse it when it exists (see the module doc).

    `workers` > 1 decodes clips in that many processes (same arrays, same order). `verify`:
    check every byte of a reused cache against its manifest (else a sample). `used_by`: who
    uses it (a sweep folder, a config file), for `mer cache list`.
    """
    return _prepare(data_cfg, progress=progress, workers=workers, verify=verify, used_by=used_by)[0]


def _prepare(
    data_cfg: DataConfig,
    *,
    progress: bool,
    workers: int,
    verify: bool = False,
    used_by: str | None = None,
) -> tuple[PreparedData, bool, float]:
    """(data, built now?, seconds spent building); warns once about clips with repeated frames
    (built or reused: every run using the cache should say so)."""
    data, built, seconds = _build_or_reuse(
        data_cfg, progress=progress, workers=workers, verify=verify
    )
    assert data.path is not None
    listing.record_use(data.path.parent, data.key, used_by)
    numbers = np.load(data.path / "frame_numbers.npy")
    checks.warn_repeated_frames(list(data.samples["sample_id"]), numbers, data_cfg)
    data.faces = face_table.summary(data.samples, data.excluded, data_cfg)
    face_index.record(data_cfg, data.path, data.key, data.faces)
    for line in face_table.summary_lines(data.faces):
        log.info("%s", line)
    face_table.check_bad_clips(data.excluded, data_cfg)
    face_table.check_policy(data.samples, data_cfg)
    return data, built, seconds


def _build_or_reuse(
    data_cfg: DataConfig, *, progress: bool, workers: int, verify: bool = False
) -> tuple[PreparedData, bool, float]:
    check_config(data_cfg)
    samples, class_names, src = read_samples(data_cfg, check_media=True)
    r = data_cfg.regions
    annotated = r.landmarks == "annotated" and face_table.uses_faces(data_cfg)
    media: list[str] = []
    identity = source_identity(samples, annotation_files(data_cfg, src), annotated, media)
    key = cache_key(data_cfg, identity)
    root = Path(data_cfg.cache_dir).expanduser()
    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_path(root, key)) as locked:
        if (target / MANIFEST).is_file():
            log.info("reusing prepared data %s (%d clips)", target, len(samples))
            data = load_prepared(target, verify="full" if verify else "sample")
            _check_reused(data, samples, class_names)
            return data, False, 0.0
        if target.exists():
            raise DataError(
                f"{target}: incomplete cache folder (no {MANIFEST}); delete it and prepare again"
            )
        if locked:
            remove_stale(root, key)
        est = budget.Estimate.of(data_cfg, len(samples))
        budget.check_memory(est)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=root))
        try:
            _build(tmp, data_cfg, samples, class_names, key, identity, media, progress, workers, t0)
            publish(tmp, target)
        except OSError as exc:
            full = budget.no_space(exc, root, est)
            if full is None:
                raise
            raise full from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        seconds = time.perf_counter() - t0
    log.info(
        "prepared %d clips in %.1f s (%.1f clips/s) → %s",
        len(samples), seconds, len(samples) / max(seconds, 1e-9), target,
    )  # fmt: skip
    return load_prepared(target), True, seconds


def _build(
    tmp: Path,
    data_cfg: DataConfig,
    samples: pd.DataFrame,
    class_names: list[str],
    key: str,
    identity: dict[str, Any],
    media: list[str],
    progress: bool,
    workers: int,
    t0: float,
) -> None:
    """Every clip prepared (or found among the per-clip results), then the cache folder `tmp`
    written from them (mer.data.assemble); the per-clip results are removed once it is."""
    store = clipstore.ClipStore(clipstore.config_folder(data_cfg), data_cfg)
    jobs = clip_jobs(samples)
    keys = [store.key(job, m) for job, m in zip(jobs, media, strict=True)]
    est = budget.Estimate.of(data_cfg, len(samples))
    failures = assemble.prepare_clips(
        data_cfg, samples, store, keys, est, progress=progress, workers=workers
    )
    if failures and data_cfg.on_bad_clip != "exclude":
        raise assemble.failures_error(failures, len(samples), store)
    recycle = budget.recycle(tmp, est)
    if recycle:
        log.warning(
            "%s: little free space (%s); each clip's per-clip result is removed as it is copied "
            "into the cache (%s)", tmp.parent, budget.fmt_bytes(budget.free_bytes(tmp)),
            budget.fmt_bytes(est.total),
        )  # fmt: skip
    assemble.build(
        tmp, data_cfg, samples, class_names, key, identity, store, keys, failures, t0,
        recycle=recycle,
    )  # fmt: skip
    store.remove(keys)


# ---------------------------------------------------------------------------------- sweeps
def distinct_data_configs(cfg: Any) -> list[DataConfig]:
    """The distinct data sections among a sweep's variants, in variant order (settings that
    `key_config` ignores do not make a section distinct)."""
    seen: dict[str, DataConfig] = {}
    for variant in cfg.variants:
        data = variant_config(cfg, variant).data
        seen.setdefault(config_hash([data.cache_dir, key_config(data)]), data)
    return list(seen.values())


def prepare_sweep(
    cfg: Any,
    *,
    progress: bool = True,
    workers: int = 0,
    verify: bool = False,
    used_by: str | None = None,
) -> Iterator[tuple[PreparedData, bool, float]]:
    """Prepare (or reuse) the cache of every distinct data section of a sweep, one after
    another (what `mer prepare` does): (data, built now?, seconds spent building) for each.

    `workers` 0: one decoding process per CPU, at most 8."""
    workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
    for data_cfg in distinct_data_configs(cfg):
        yield _prepare(data_cfg, progress=progress, workers=workers, verify=verify, used_by=used_by)


known_coverage = face_index.known_coverage  # the dry run's "where known"

__all__ = [
    "PreparedData",
    "cache_key",
    "distinct_data_configs",
    "key_config",
    "known_coverage",
    "legacy_changes",
    "load_prepared",
    "load_samples_only",
    "prepare_data",
    "prepare_sweep",
    "read_table",
    "source_identity",
    "synthetic_dir",
    "write_table",
]
