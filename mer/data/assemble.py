"""Build a cache folder: every clip prepared (or found among the per-clip results of an earlier,
interrupted run), the clips that failed reported together or excluded, the rest copied into the
branch arrays with their digests, and the manifest written last.

The arrays are written with plain writes (integrity.ArrayWriter), clip after clip in table
order, from the per-clip results; so a build that was interrupted and continued writes the same
bytes as one that ran through.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mer.config import DataConfig, to_dict
from mer.data import budget, checks, clipstore, regions
from mer.data.clips import ClipJob, ClipSettings
from mer.data.faces import table as face_table
from mer.data.integrity import ArrayWriter, bytes_record, manifest_digest, save_array
from mer.data.keys import CACHE_VERSION, key_config
from mer.data.sources import clip_jobs
from mer.data.tableio import table_bytes
from mer.errors import DataError
from mer.util.files import naming
from mer.util.jsonio import dumps, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
N_LANDMARKS = 68
SHOWN_FAILURES = 30  # failures listed in the error (all of them go to the log)


def prepare_clips(
    data_cfg: DataConfig,
    samples: pd.DataFrame,
    store: clipstore.ClipStore,
    keys: list[str],
    est: budget.Estimate,
    *,
    progress: bool,
    workers: int,
) -> dict[int, str]:
    """Prepare the clips that have no stored result yet; returns the failures by row. Refuses
    first when the file system cannot hold them (budget.check_disk)."""
    s = ClipSettings.from_config(data_cfg)
    jobs = clip_jobs(samples)
    todo = [(i, jobs[i], store.file(k)) for i, k in enumerate(keys) if not store.has(k)]
    n = len(samples)
    if len(todo) < n:
        log.info(
            "%d of %d clips were prepared by an earlier run (%s); decoding the other %d",
            n - len(todo), n, store.folder, len(todo),
        )  # fmt: skip
    if todo:
        budget.check_disk(store.folder.parent.parent, est, len(todo))
    with tqdm(
        total=n, initial=n - len(todo), desc=f"prepare {data_cfg.dataset}", unit="clip",
        disable=not progress,
    ) as bar:  # fmt: skip
        return clipstore.run(todo, s, workers, bar)


def failures_error(failures: dict[int, str], n: int, store: clipstore.ClipStore) -> DataError:
    """Every clip failure of a build in one DataError (the first one first, as a single failure
    would read), with what to do and what was kept."""
    rows = sorted(failures)
    lines = [failures[i] for i in rows]
    if len(lines) > SHOWN_FAILURES:
        log.error("%d clips could not be prepared:\n%s", len(lines), "\n".join(lines))
    text = lines[0]
    if len(lines) > 1:
        shown = lines[1:SHOWN_FAILURES]
        more = len(lines) - 1 - len(shown)
        text += f"\n... and {len(lines) - 1} more of the {n} clips could not be prepared:\n"
        text += "\n".join(f"  - {line}" for line in shown)
        text += f"\n  (+{more} more, listed in the log above)" if more > 0 else ""
    done = n - len(rows)
    return DataError(
        f"{text}\n{len(rows)} of {n} clip(s) could not be prepared (data.on_bad_clip: error). "
        "Fix them, or set data.on_bad_clip: exclude to leave them out (listed in the manifest, "
        f"plan.json and the report). The {done} clip(s) prepared are kept in {store.folder}: "
        "the next run decodes only the others"
    )


def build(
    tmp: Path,
    data_cfg: DataConfig,
    samples: pd.DataFrame,
    class_names: list[str],
    key: str,
    identity: dict[str, Any],
    store: clipstore.ClipStore,
    keys: list[str],
    failures: dict[int, str],
    t0: float,
    *,
    recycle: bool,
) -> None:
    """Write the cache folder `tmp` from the per-clip results (module doc). `failures`: the
    clips to exclude (data.on_bad_clip exclude); `recycle`: remove each clip's result as soon
    as it is copied (the file system cannot hold both)."""
    s = ClipSettings.from_config(data_cfg)
    n, shape = len(samples), (s.count, s.size, s.size, 3)
    bad = sorted(failures)
    excluded = face_table.bad_clip_records(samples.iloc[bad], [failures[i] for i in bad])
    good = [i for i in range(n) if i not in failures]
    if not good:
        raise DataError(
            f"all {n} clips could not be prepared (data.on_bad_clip exclude), e.g. "
            f"{failures[bad[0]]}: nothing left to train on"
        )
    if bad:
        log.warning(
            "data.on_bad_clip exclude: %d of %d clips could not be prepared and are left out "
            "(listed in %s and plan.json): %s",
            len(bad), n, MANIFEST, "; ".join(failures[i] for i in bad[: face_table.SHOWN]),
        )  # fmt: skip

    jobs = clip_jobs(samples)
    metas = [store.load(keys[i], arrays=False, redo=(jobs[i], s)) for i in good]
    stats = [m.stats for m in metas]
    oracle = s.policy == "au_oracle"
    table = samples.iloc[good].reset_index(drop=True)
    table["region"] = pd.Series([m.region for m in metas], dtype=object).astype(str)
    table["oracle_input"] = oracle
    table = face_table.add_columns(table, stats, s.count)
    numbers = np.stack([m.numbers for m in metas]).astype(np.int64)
    uses_landmarks = s.policy in regions.NEEDS_LANDMARKS
    points = np.full((len(good), s.count, N_LANDMARKS, 2), np.nan, dtype=np.float32)
    for j, m in enumerate(metas):
        if m.landmarks is not None:
            points[j] = m.landmarks

    keep = np.arange(len(good))
    if s.exclude_low is not None:
        low = face_table.below(table, s.exclude_low)
        if len(low) == len(good):
            raise DataError(
                f"all {len(good)} clips show a face in fewer than {100 * s.exclude_low:.0f}% of "
                f"their selected frames (data.faces.min_coverage {s.exclude_low:g}, "
                f"on_low_coverage exclude), e.g. {low['sample_id'].iloc[0]} "
                f"({low['where'].iloc[0]}): nothing left to train on; check "
                "data.regions.landmarks and the media"
            )
        if len(low):
            coverage = face_table.excluded_records(low)
            excluded += coverage
            keep = np.setdiff1d(keep, low.index.to_numpy())
            log.warning(
                "data.faces.on_low_coverage exclude: %d of %d clips left out for showing a face "
                "in fewer than %.0f%% of their selected frames (listed in %s and plan.json): %s",
                len(coverage), len(good), 100 * s.exclude_low, MANIFEST,
                "; ".join(f"{e['sample_id']} ({e['where']}) {e['face_coverage']:.0%}"
                          for e in coverage[: face_table.SHOWN]),
            )  # fmt: skip
            table, numbers, points = (
                table.iloc[keep].reset_index(drop=True),
                numbers[keep],
                points[keep],
            )

    rows = [good[j] for j in keep.tolist()]
    redo = [(keys[i], (jobs[i], s)) for i in rows]
    files = _write_branches(tmp, store, redo, shape, s.policy != "none", recycle)
    files["frame_numbers.npy"] = save_array(tmp / "frame_numbers.npy", numbers)
    if uses_landmarks:
        files["landmarks.npy"] = save_array(tmp / "landmarks.npy", points)
    body = table_bytes(table)
    with naming(tmp / "samples.json"):
        (tmp / "samples.json").write_bytes(body)
    files["samples.json"] = bytes_record(body)

    seconds = time.perf_counter() - t0
    detected = sum(1 for st in stats if st is not None and st.detected)
    if s.uses_faces and s.landmark_cache is not None:
        log.info(
            "landmarks: %d clips detected, %d from the landmark cache",
            detected,
            len(good) - detected,
        )
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
            "bad_clips": len(bad),
            "landmarks_detected": detected if s.uses_faces else 0,
            "landmarks_reused": (len(good) - detected) if s.uses_faces else 0,
        },
        "excluded": excluded,
        "faces": face_table.summary(table, excluded, data_cfg),
        "arrays": {
            "global": [len(table), *shape],
            "regions": [len(table), *shape] if s.policy != "none" else None,
            "landmarks": uses_landmarks,
        },
        "files": files,
        "build_seconds": round(seconds, 3),
        "clips_per_second": round(n / max(seconds, 1e-9), 2),
        "seconds_per_clip": round(seconds / max(n, 1), 4),
        "versions": _versions(s.landmarks if s.uses_faces else None),
    }
    manifest["manifest_sha256"] = manifest_digest(_json_roundtrip(manifest))
    write_json(tmp / MANIFEST, manifest)


def _json_roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    """The manifest as a reader will load it (tuples become lists, numpy scalars numbers)."""
    return json.loads(dumps(obj))


def _write_branches(
    tmp: Path,
    store: clipstore.ClipStore,
    clips: list[tuple[str, tuple[ClipJob, ClipSettings]]],
    shape: tuple[int, ...],
    with_regions: bool,
    recycle: bool,
) -> dict[str, dict[str, Any]]:
    """global.npy and regions.npy from the per-clip results (key, (job, settings)), clip by
    clip."""
    full = (len(clips), *shape)
    writers = {"global.npy": ArrayWriter(tmp / "global.npy", full, np.uint8, rows=True)}
    if with_regions:
        writers["regions.npy"] = ArrayWriter(tmp / "regions.npy", full, np.uint8, rows=True)
    try:
        for k, redo in clips:
            clip = store.load(k, redo=redo)
            writers["global.npy"].write(clip.global_clip)
            if with_regions:
                writers["regions.npy"].write(clip.region_clip)
            if recycle:
                store.remove([k])
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return {name: w.close() for name, w in writers.items()}


def _versions(landmarks: str | None) -> dict[str, str]:
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
