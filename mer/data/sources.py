"""What a data config reads: its files (annotations, media root, the generated synthetic data),
its sample table (annotations + label scheme, with the annotation-only checks), the config checks
done before any decoding, and the per-clip jobs the prepare step runs.

Kept apart from the cache so that a dry run (annotations only) and the prepare step read the same
rows in the same order through one path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import DataConfig, config_hash
from mer.data import checks, regions
from mer.data.clips import ClipJob
from mer.data.faces import table as face_table
from mer.data.locking import file_lock
from mer.datasets.annotations import load_samples
from mer.datasets.labels import apply_label_scheme
from mer.datasets.synthetic import ensure_dataset
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class Sources:
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


def resolve_sources(data_cfg: DataConfig) -> Sources:
    """The files to read (synthetic data is generated first when missing: it is cheap)."""
    if not data_cfg.is_synthetic:
        return Sources(
            data_cfg.dataset,
            _expand(data_cfg.annotations),
            _expand(data_cfg.root),
            dict(data_cfg.sources) or None,
        )
    syn = data_cfg.synthetic
    out = synthetic_dir(data_cfg)
    lock = Path(data_cfg.cache_dir).expanduser() / ".locks" / f"synthetic-{_digest(str(out))}.lock"
    with file_lock(lock):
        ds = ensure_dataset(out, syn.layout, **syn.generator_args())
    return Sources(syn.layout, ds.annotations, ds.root, None)


def read_samples(
    data_cfg: DataConfig, *, check_media: bool
) -> tuple[pd.DataFrame, list[str], Sources]:
    """(sample table with the label scheme applied, class names, the files read)."""
    src = resolve_sources(data_cfg)
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
    check_config(data_cfg)
    samples, class_names, _ = read_samples(data_cfg, check_media=False)
    return samples, class_names


def annotation_files(data_cfg: DataConfig, src: Sources) -> list[Path]:
    """Every annotation file the table came from (the cache key covers them)."""
    files = [src.annotations] if src.annotations is not None else []
    if data_cfg.label_list:  # the list a label scheme reads (megc2019_official)
        files.append(Path(data_cfg.label_list).expanduser())
    for part in data_cfg.sources.values():
        if part.annotations:
            files.append(Path(part.annotations).expanduser())
    return [f for f in files if f.is_file()]


def check_config(data_cfg: DataConfig) -> None:
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


def _na(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def clip_jobs(samples: pd.DataFrame) -> list[ClipJob]:
    """One job per table row, in table order (NA onset/apex/offset become None)."""
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
