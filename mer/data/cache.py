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
                        included), clips excluded for low face coverage, versions, timing

Face detections come from the landmark cache (mer.data.faces.store) when another data config
selected the same frames with the same detector settings; the manifest counts clips detected and
reused. Clips below `data.faces.min_coverage` are excluded at build time (`on_low_coverage:
exclude`: not in the arrays, listed in the manifest), or, for `error` and `keep`, checked every
time the cache is used (they do not change the arrays, so the same cache serves both).
`{data.cache_dir}/.coverage/{data key}.json` keeps the last coverage summary of each data config,
which a dry run shows where it exists.

key = sha256 of (CACHE_VERSION, mer.config.config_hash of the data section without cache_dir and
without settings the chosen policy ignores, identity of the source files). The identity covers
every annotation file and every media file the samples use (frame files of a folder, a video
file, synthetic landmark files) by resolved path, size and mtime (not content: hashing gigabytes
of frames would cost as much as decoding them). So touching or replacing a frame rebuilds; moving
the dataset to another path also rebuilds.

The cache is built in a temporary folder inside the cache dir and renamed into place atomically;
a writer that loses the race discards its copy and uses the winner's. A lock file, where the file
system supports it, makes a second preparer wait instead of building the same thing twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import DataConfig, config_hash, to_dict
from mer.data import checks, regions
from mer.data.clips import ClipArrays, ClipJob, ClipSettings, process_clip
from mer.data.faces import index as face_index
from mer.data.faces import table as face_table
from mer.data.keys import CACHE_VERSION, cache_key, key_config, legacy_changes, source_identity
from mer.errors import ConfigError, DataError
from mer.util.jsonio import dumps, read_json, to_plain, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
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
    excluded: list[dict[str, Any]] = field(default_factory=list)  # low face coverage (manifest)
    faces: dict[str, Any] = field(default_factory=dict)  # coverage summary (mer.data.faces.table)

    @property
    def branch_b(self) -> np.ndarray:
        return self.region_clips if self.region_clips is not None else self.global_clips


# ------------------------------------------------------------------------------ sample table
@dataclass
class _Sources:
    dataset: str  # reader name (the synthetic layout for synthetic data)
    annotations: Path | None
    root: Path | None
    sources: dict[str, Any] | None


def _expand(value: str | None) -> Path | None:
    return None if value in (None, "") else Path(str(value)).expanduser()


def synthetic_dir(data_cfg: DataConfig) -> Path:
    """Where `dataset: synthetic` data lives: data.root, else under the cache dir by its params."""
    if data_cfg.root:
        return Path(data_cfg.root).expanduser()
    base = Path(data_cfg.cache_dir).expanduser()
    return base / "synthetic" / config_hash(data_cfg.synthetic)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _remove_stale(root: Path, key: str) -> None:
    """Temporary folders of this key left by a killed preparer (we hold the key's lock)."""
    for stale in root.glob(f".{key}.building-*"):
        log.info("removing %s, left by an interrupted prepare", stale)
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """Exclusive lock on `path` where the OS and file system allow it; yields whether it holds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
            locked = True
        except OSError:  # pragma: no cover - e.g. a file system without locks
            log.debug("no file lock on %s; relying on atomic rename", path)
            locked = False
        try:
            yield locked
        finally:
            if locked:
                with contextlib.suppress(OSError):
                    fcntl.flock(fh, fcntl.LOCK_UN)


def _resolve_sources(data_cfg: DataConfig) -> _Sources:
    if not data_cfg.is_synthetic:
        return _Sources(
            data_cfg.dataset,
            _expand(data_cfg.annotations),
            _expand(data_cfg.root),
            dict(data_cfg.sources) or None,
        )
    from mer.datasets.synthetic import ensure_dataset

    syn = data_cfg.synthetic
    out = synthetic_dir(data_cfg)
    lock = Path(data_cfg.cache_dir).expanduser() / ".locks" / f"synthetic-{_digest(str(out))}.lock"
    with _file_lock(lock):
        ds = ensure_dataset(out, syn.layout, **syn.generator_args())
    return _Sources(syn.layout, ds.annotations, ds.root, None)


def _read_table(
    data_cfg: DataConfig, *, check_media: bool
) -> tuple[pd.DataFrame, list[str], _Sources]:
    from mer.datasets.annotations import load_samples
    from mer.datasets.labels import apply_label_scheme

    src = _resolve_sources(data_cfg)
    samples = load_samples(
        src.dataset, src.annotations, src.root, check_media=check_media, sources=src.sources,
        invalid_rows=data_cfg.invalid_rows, expressions=data_cfg.expressions,
    )  # fmt: skip
    samples, class_names = apply_label_scheme(
        samples, data_cfg.labels, label_list=data_cfg.label_list
    )
    samples = samples.reset_index(drop=True)
    if samples.empty:
        raise DataError(
            f"no clips left after label scheme {data_cfg.labels!r} "
            f"(dataset {data_cfg.dataset}, annotations {src.annotations}, root {src.root})"
        )
    checks.check_table(samples, data_cfg)  # au_oracle without AUs, missing onset/offset
    return samples, list(class_names), src


def load_samples_only(data_cfg: DataConfig) -> tuple[pd.DataFrame, list[str]]:
    """Annotations + label scheme without touching media (for --dry-run fold plans).

    Same rows, in the same order, as `prepare_data(data_cfg).samples`. Synthetic data is
    generated first when missing (it is cheap). The annotation-only checks of mer.data.checks run
    here too, so a dry run refuses au_oracle on a dataset without AUs.
    """
    _check_config(data_cfg)
    samples, class_names, _ = _read_table(data_cfg, check_media=False)
    return samples, class_names


# -------------------------------------------------------------------------------- cache key
def _annotation_files(data_cfg: DataConfig, src: _Sources) -> list[Path]:
    files = [src.annotations] if src.annotations is not None else []
    if data_cfg.label_list:  # the list a label scheme reads (megc2019_official)
        files.append(Path(data_cfg.label_list).expanduser())
    for part in data_cfg.sources.values():
        if part.annotations:
            files.append(Path(part.annotations).expanduser())
    return [f for f in files if f.is_file()]


# --------------------------------------------------------------------------- per-clip work
def _na(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _jobs(samples: pd.DataFrame) -> list[ClipJob]:
    has_aus = "aus" in samples.columns
    has_where = "where" in samples.columns  # absent from tables cached before it existed
    return [
        ClipJob(
            sample_id=str(row["sample_id"]),
            path=str(row["path"]),
            onset=_na(row["onset"]),
            apex=_na(row["apex"]),
            offset=_na(row["offset"]),
            aus=tuple(int(a) for a in (row["aus"] or [])) if has_aus else (),
            where=str(row["where"] or "") if has_where else "",
        )
        for row in samples.to_dict("records")
    ]


def _check_config(data_cfg: DataConfig) -> None:
    """Refuse settings that would be silently ignored or cannot work (before any decoding)."""
    if data_cfg.is_synthetic and (data_cfg.annotations or data_cfg.sources):
        key = "data.annotations" if data_cfg.annotations else "data.sources"
        raise ConfigError(
            f"{key}: synthetic data writes its own annotations (data.synthetic.layout chooses "
            "the format); leave it empty, or read generated files with that layout's dataset"
        )
    r = data_cfg.regions
    if r.policy in regions.NEEDS_LANDMARKS and r.landmarks == "none":
        raise ConfigError(
            f"data.regions.policy: {r.policy} crops face regions and needs landmarks; set "
            "data.regions.landmarks to dlib (or annotated for synthetic data), or use policy "
            "fixed / none"
        )
    if data_cfg.faces.global_ == "face" and r.landmarks == "none":
        raise ConfigError(
            "data.faces.global: face crops branch A to the face and needs landmarks; set "
            "data.regions.landmarks to dlib (or annotated for synthetic data), or use global: frame"
        )
    needs = face_table.uses_faces(data_cfg)
    if needs and r.landmarks == "annotated" and not data_cfg.is_synthetic:
        log.warning(
            "data.regions.landmarks: annotated reads <clip>.landmarks.npy files, which only "
            "the synthetic generator writes"
        )


# ------------------------------------------------------------------------------- table I/O
def write_table(df: pd.DataFrame, path: Path) -> None:
    """A DataFrame as JSON with its dtypes, lists kept (no pyarrow/pickle needed to read it)."""
    body = {
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(df[c].dtype) for c in df.columns},
        "data": {str(c): to_plain(df[c].tolist()) for c in df.columns},
        "attrs": to_plain(df.attrs),  # the rows left out (mer.datasets.problems)
    }
    path.write_text(dumps(body, indent=None))


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


# ------------------------------------------------------------------------------ build / load
def load_prepared(path: str | Path) -> PreparedData:
    """Open a cache folder (arrays memory-mapped read-only: nothing is decoded)."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a prepared-data folder ({exc})") from None
    samples = read_table(path / "samples.json")
    global_clips = np.load(path / "global.npy", mmap_mode="r")
    region_file = path / "regions.npy"
    region_clips = np.load(region_file, mmap_mode="r") if region_file.exists() else None
    if len(samples) != global_clips.shape[0]:
        raise DataError(
            f"{path}: {len(samples)} samples but {global_clips.shape[0]} clips in global.npy"
        )
    return PreparedData(
        samples=samples,
        class_names=list(manifest["class_names"]),
        global_clips=global_clips,
        region_clips=region_clips,
        key=manifest["key"],
        path=path,
        oracle_input=bool(manifest["oracle_input"]),
        excluded=list(manifest.get("excluded", [])),
        faces=dict(manifest.get("faces", {})),
    )


def _versions(landmarks: str | None) -> dict[str, str]:
    from importlib import metadata

    out = {}
    names = ["mer", "numpy", "pandas", "pillow", "av"] + (
        ["dlib-bin"] if landmarks == "dlib" else []
    )
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def prepare_data(data_cfg: DataConfig, *, progress: bool = True, workers: int = 1) -> PreparedData:
    """Build the cache for `data_cfg`, or reuse it when it exists (see the module doc).

    `workers` > 1 decodes clips in that many processes (same arrays, same order).
    """
    return _prepare(data_cfg, progress=progress, workers=workers)[0]


def _prepare(
    data_cfg: DataConfig, *, progress: bool, workers: int
) -> tuple[PreparedData, bool, float]:
    """(data, built now?, seconds spent building); warns once about clips with repeated frames
    (built or reused: every run using the cache should say so)."""
    data, built, seconds = _build_or_reuse(data_cfg, progress=progress, workers=workers)
    assert data.path is not None
    numbers = np.load(data.path / "frame_numbers.npy")
    checks.warn_repeated_frames(list(data.samples["sample_id"]), numbers, data_cfg)
    data.faces = face_table.summary(data.samples, data.excluded, data_cfg)
    face_index.record(data_cfg, data.path, data.key, data.faces)
    for line in face_table.summary_lines(data.faces) if data.faces.get("measured") else []:
        log.info("%s", line)
    face_table.check_policy(data.samples, data_cfg)
    return data, built, seconds


def _build_or_reuse(
    data_cfg: DataConfig, *, progress: bool, workers: int
) -> tuple[PreparedData, bool, float]:
    _check_config(data_cfg)
    samples, class_names, src = _read_table(data_cfg, check_media=True)
    r = data_cfg.regions
    annotated = r.landmarks == "annotated" and face_table.uses_faces(data_cfg)
    identity = source_identity(samples, _annotation_files(data_cfg, src), annotated)
    key = cache_key(data_cfg, identity)
    root = Path(data_cfg.cache_dir).expanduser()
    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".locks" / f"{key}.lock") as locked:
        if (target / MANIFEST).is_file():
            log.info("reusing prepared data %s (%d clips)", target, len(samples))
            return load_prepared(target), False, 0.0
        if target.exists():
            raise DataError(
                f"{target}: incomplete cache folder (no {MANIFEST}); delete it and prepare again"
            )
        if locked:
            _remove_stale(root, key)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=root))
        try:
            _build(tmp, data_cfg, samples, class_names, key, identity, progress, workers, t0)
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / MANIFEST).is_file():
                    raise
                log.info("another process prepared %s first; using it", target)
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
    progress: bool,
    workers: int,
    t0: float,
) -> None:
    from tqdm import tqdm

    s = ClipSettings.from_config(data_cfg)
    n, shape = len(samples), (len(samples), s.count, s.size, s.size, 3)
    fmt = np.lib.format
    global_arr = fmt.open_memmap(tmp / "global.npy", mode="w+", dtype=np.uint8, shape=shape)
    region_arr = None
    if s.policy != "none":
        region_arr = fmt.open_memmap(tmp / "regions.npy", mode="w+", dtype=np.uint8, shape=shape)
    numbers = np.zeros((n, s.count), dtype=np.int64)
    uses_landmarks = s.policy in regions.NEEDS_LANDMARKS
    points = np.full((n, s.count, N_LANDMARKS, 2), np.nan, dtype=np.float32)
    region_col, stats = [], []

    rows = _jobs(samples)
    with tqdm(
        total=n, desc=f"prepare {data_cfg.dataset}", unit="clip", disable=not progress
    ) as bar:
        for i, out in enumerate(_run(rows, s, workers)):
            global_arr[i] = out.global_clip
            if region_arr is not None:
                assert out.region_clip is not None
                region_arr[i] = out.region_clip
            numbers[i] = out.numbers
            if out.landmarks is not None:
                points[i] = out.landmarks
            region_col.append(out.region)
            stats.append(out.stats)
            bar.update()
    global_arr.flush()
    if region_arr is not None:
        region_arr.flush()
    del global_arr, region_arr

    oracle = s.policy == "au_oracle"
    table = samples.copy()
    table["region"] = pd.Series(region_col, dtype=object).astype(str)
    table["oracle_input"] = oracle
    table = face_table.add_columns(table, stats, s.count)
    excluded: list[dict[str, Any]] = []
    if s.exclude_low is not None:
        low = face_table.below(table, s.exclude_low)
        if len(low) == n:
            raise DataError(
                f"all {n} clips show a face in fewer than {100 * s.exclude_low:.0f}% of their "
                f"selected frames (data.faces.min_coverage {s.exclude_low:g}, on_low_coverage "
                f"exclude), e.g. {low['sample_id'].iloc[0]} ({low['where'].iloc[0]}): nothing "
                "left to train on; check data.regions.landmarks and the media"
            )
        if len(low):
            excluded = face_table.excluded_records(low)
            keep = np.setdiff1d(np.arange(n), low.index.to_numpy())
            _keep_rows(tmp, keep, (len(keep), *shape[1:]))
            table, numbers, points = (
                table.iloc[keep].reset_index(drop=True),
                numbers[keep],
                points[keep],
            )
            log.warning(
                "data.faces.on_low_coverage exclude: %d of %d clips left out for showing a face "
                "in fewer than %.0f%% of their selected frames (listed in %s and plan.json): %s",
                len(excluded), n, 100 * s.exclude_low, MANIFEST,
                "; ".join(f"{e['sample_id']} ({e['where']}) {e['face_coverage']:.0%}"
                          for e in excluded[: face_table.SHOWN]),
            )  # fmt: skip
    np.save(tmp / "frame_numbers.npy", numbers)
    if uses_landmarks:
        np.save(tmp / "landmarks.npy", points)
    write_table(table, tmp / "samples.json")

    seconds = time.perf_counter() - t0
    detected = sum(1 for st in stats if st is not None and st.detected)
    if s.uses_faces and s.landmark_cache is not None:
        log.info("landmarks: %d clips detected, %d from the landmark cache", detected, n - detected)
    manifest = {
        "key": key,
        "cache_version": CACHE_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": to_dict(data_cfg),
        "key_config": key_config(data_cfg),
        "sources": identity,
        "class_names": class_names,
        "oracle_input": oracle,
        "counts": {
            "clips": len(table),
            "frames": s.count,
            "size": s.size,
            "per_class": {c: int((table["label"] == i).sum()) for i, c in enumerate(class_names)},
            "per_dataset": {str(k): int(v) for k, v in table["dataset"].value_counts().items()},
            "per_region": {str(k): int(v) for k, v in table["region"].value_counts().items()},
            "no_face": int((table["face_frames"] == 0).sum()),
            "repeated_frames": int((checks.distinct_frames(numbers) < s.count).sum()),
            "excluded": len(excluded),
            "landmarks_detected": detected if s.uses_faces else 0,
            "landmarks_reused": (n - detected) if s.uses_faces else 0,
        },
        "excluded": excluded,
        "faces": face_table.summary(table, excluded, data_cfg),
        "arrays": {
            "global": [len(table), *shape[1:]],
            "regions": [len(table), *shape[1:]] if s.policy != "none" else None,
            "landmarks": uses_landmarks,
        },
        "build_seconds": round(seconds, 3),
        "clips_per_second": round(n / max(seconds, 1e-9), 2),
        "seconds_per_clip": round(seconds / max(n, 1), 4),
        "versions": _versions(s.landmarks if s.uses_faces else None),
    }
    write_json(tmp / MANIFEST, manifest)


def _keep_rows(tmp: Path, keep: np.ndarray, shape: tuple[int, ...]) -> None:
    """Rewrite the branch arrays in `tmp` with only the rows `keep` (clips excluded)."""
    for name in ("global.npy", "regions.npy"):
        path = tmp / name
        if not path.exists():
            continue
        old = np.load(path, mmap_mode="r")
        part = tmp / f"{name}.part"
        new = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8, shape=shape)
        for j, i in enumerate(keep.tolist()):
            new[j] = old[i]
        new.flush()
        del new, old
        os.replace(part, path)


def _run(rows: list[ClipJob], s: ClipSettings, workers: int) -> Iterator[ClipArrays]:
    """Process clips in order, in this process or in `workers` processes."""
    if workers <= 1 or len(rows) <= 1:
        for row in rows:
            yield process_clip(row, s)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(process_clip, rows, [s] * len(rows), chunksize=1)


def distinct_data_configs(cfg: Any) -> list[DataConfig]:
    """The distinct data sections among a sweep's variants, in variant order (settings that
    `key_config` ignores do not make a section distinct)."""
    from mer.config import variant_config

    seen: dict[str, DataConfig] = {}
    for variant in cfg.variants:
        data = variant_config(cfg, variant).data
        seen.setdefault(config_hash([data.cache_dir, key_config(data)]), data)
    return list(seen.values())


def prepare_sweep(
    cfg: Any, *, progress: bool = True, workers: int = 0
) -> Iterator[tuple[PreparedData, bool, float]]:
    """Prepare (or reuse) the cache of every distinct data section of a sweep, one after
    another (what `mer prepare` does): (data, built now?, seconds spent building) for each.

    `workers` 0: one decoding process per CPU, at most 8."""
    workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
    for data_cfg in distinct_data_configs(cfg):
        yield _prepare(data_cfg, progress=progress, workers=workers)


known_coverage = face_index.known_coverage  # the dry run's "where known"

__all__ = [
    "PreparedData",
    "cache_key",
    "key_config",
    "known_coverage",
    "legacy_changes",
    "source_identity",
    "distinct_data_configs",
    "load_prepared",
    "load_samples_only",
    "prepare_data",
    "prepare_sweep",
]
