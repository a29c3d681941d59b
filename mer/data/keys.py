"""The prepared-data cache key: which data settings and which source files a cache stands for.

key = sha256 of (CACHE_VERSION, mer.config.config_hash of `key_config(data_cfg)`, the identity of
the source files). `key_config` is the data section without cache_dir and without settings that
the dataset kind or the region policy ignore, so they do not split the cache; a setting added
later enters it only where it differs from what mer did before it existed, so earlier caches keep
their keys (`data.faces`: `face_key`). The identity covers every annotation file and every media
file the samples use by resolved path, size and mtime (mer.data.cache's module doc).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import DataConfig, FacesConfig, config_hash, from_dict, variant_config
from mer.config.plain import hash_form
from mer.data import frames, regions
from mer.data.faces import resolve_boxes
from mer.data.faces.table import uses_faces
from mer.datasets import media
from mer.datasets.synthetic import landmark_path
from mer.errors import ConfigError

CACHE_VERSION = 1  # bump when the processing or the format changes what a key stands for


def key_config(data_cfg: DataConfig) -> dict[str, Any]:
    """The data section as it determines the arrays: without cache_dir, and without settings
    that the dataset kind or the region policy ignore (so they do not split the cache)."""
    d = hash_form(data_cfg)  # keys added later count only when not at their default
    d.pop("cache_dir", None)
    # what happens to a clip that fails is no property of the arrays: a cache built under
    # `exclude` lists the clips it left out, and `error` refuses such a cache when it is used
    d.pop("on_bad_clip", None)
    if not data_cfg.is_synthetic:
        d.pop("synthetic", None)
    fr = d["frames"]
    # the window as resolved (auto → annotated/clip); absent where it is what mer did before it
    # existed (whole clip; onset_apex_offset's own window), so those caches keep their keys
    fr.pop("window", None)
    if frames.selection_window(data_cfg) == "annotated" and (
        data_cfg.frames.select not in frames.NEEDS_WINDOW
    ):
        fr["window"] = "annotated"
    if not data_cfg.frames.skip:
        fr.pop("skip", None)
    reg = d["regions"]
    if data_cfg.regions.policy not in regions.NEEDS_LANDMARKS:
        crops_face = data_cfg.faces.global_ == "face"  # still detects faces: keep their settings
        for k in ("au_codes", "margin", "keep_aspect") + (
            () if crops_face else ("landmarks", "no_face", "upsample")
        ):
            reg.pop(k, None)
    elif data_cfg.regions.policy != "au_oracle":
        reg.pop("au_codes", None)
    if data_cfg.regions.landmarks != "dlib":
        reg.pop("upsample", None)
    d.pop("faces", None)
    faces = face_key(data_cfg)
    if faces:
        d["faces"] = faces
    return d


def face_key(data_cfg: DataConfig) -> dict[str, Any]:
    """The `data.faces` settings that change this config's arrays, each only where it differs
    from what mer did before the setting existed (so those caches keep their keys): dlib's
    min_score above 0 and tracking, per-clip boxes, the face crop, and exclusion (which changes
    the clips). `error` and `keep` change no array (mer.data.faces.table.check_policy)."""
    fc, r = data_cfg.faces, data_cfg.regions
    if not uses_faces(data_cfg):
        return {}
    out: dict[str, Any] = {}
    if r.landmarks == "dlib":
        if fc.min_score != 0.0:
            out["min_score"] = fc.min_score
        if fc.track:
            out["track"] = True
    if resolve_boxes(fc.boxes, r.landmarks) != "per_frame":
        out["boxes"] = "per_clip"
    if fc.global_ == "face":
        out["global"] = "face"
        out["margin"] = fc.margin
    if fc.on_low_coverage == "exclude" and fc.min_coverage > 0:
        out["exclude_below"] = fc.min_coverage
    return out


def legacy_changes(old: dict[str, Any], cfg: Any) -> list[str]:
    """Variants of `cfg` whose prepared data differs from what the sweep whose resolved config
    is `old` prepared, when `old` was written before `data.faces` existed (whose defaults now
    detect, track and cut faces differently for dlib landmarks); empty otherwise."""
    data = old.get("data")
    if not isinstance(data, dict) or "faces" in data:
        return []
    then = copy.deepcopy(old)
    then["data"]["faces"] = dict(FacesConfig.LEGACY)
    try:
        before = from_dict(then)
    except ConfigError:
        return []  # not today's schema: the config comparison names the difference
    changed = []
    for name in cfg.variants:
        if name not in before.ablations:
            continue
        now, was = variant_config(cfg, name).data, variant_config(before, name).data
        if config_hash(key_config(now)) != config_hash(key_config(was)):
            changed.append(name)
    return changed


def _stat_line(path: Path) -> tuple[str, int]:
    st = path.stat()
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n", st.st_size


def source_identity(
    samples: pd.DataFrame,
    annotation_files: list[Path],
    landmark_files: bool = False,
    per_row: list[str] | None = None,
) -> dict[str, Any]:
    """Digest of the sources' paths, sizes and mtimes (see the module doc). `per_row`, when
    given, receives the digest of each row's own media (frames or video, its landmark file), in
    table order: what the per-clip results of mer.data.clipstore are keyed by."""
    h = hashlib.sha256()
    n_files = n_bytes = 0
    row: Any = None

    def add(path: Path) -> None:
        nonlocal n_files, n_bytes
        line, size = _stat_line(path)
        h.update(line.encode())
        if row is not None:
            row.update(line.encode())
        n_files += 1
        n_bytes += size

    for ann in annotation_files:
        add(ann.resolve())
    for value in samples["path"]:
        row = hashlib.sha256() if per_row is not None else None
        clip = Path(str(value)).resolve()
        if clip.is_dir():
            for _, frame in media.list_frames(clip):
                add(frame)
        else:
            add(clip)
        if landmark_files:
            lm = landmark_path(clip)
            if lm.is_file():
                add(lm)
        if per_row is not None:
            per_row.append(row.hexdigest())
    return {"digest": h.hexdigest(), "files": n_files, "bytes": n_bytes}


def cache_key(data_cfg: DataConfig, identity: dict[str, Any]) -> str:
    body = json.dumps(
        {"version": CACHE_VERSION, "config": config_hash(key_config(data_cfg), 32),
         "sources": identity["digest"]},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()[:16]
