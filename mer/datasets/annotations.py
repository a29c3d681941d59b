"""Annotation readers → one sample table for every dataset (see PROTOCOL.md §1-2).

`load_samples(dataset, annotations, root)` reads a dataset as users receive it and returns one row
per annotated clip (columns `COLUMNS`, sorted by sample_id; megc2019 adds `megc_label`). With
`check_media=True` each row's frame folder / video is verified and `path` set; with False only the
annotations are read (`path` None), which is what a `--dry-run` needs. `where` says where the user
finds the clip (`FILE, sheet 'S', row N`, `FILE, line N (...)`, or the clip's folder / video for
layouts whose class is a folder), so checks run on the table later (the label scheme, ...) can
point at the row to fix; it is text for messages only and may be absent from an older cache.

| dataset   | annotations                       | root                                        |
|-----------|-----------------------------------|---------------------------------------------|
| casme2    | CASME2-coding-*.xlsx (required)   | folder of sub01/EP02_01f/img46.jpg          |
| samm      | SAMM_Micro_FACS_Codes_v2.xlsx     | folder of 006/006_1_2/006_05562.jpg         |
| smic      | none                              | SMIC folder (with HS/) or HS (required)     |
| casme3    | Part A label sheet (xlsx/csv)     | part_A folder or its parent                 |
| deception | optional csv clip → subject       | folder with Clips/ or Clips (required)      |
| videos    | xlsx Filename → Subject, AUs      | folder of <class>/<name>.mp4 (required)     |
| megc2019  | combined_3class_gt.csv (required) | empty: `sources` give each part's files     |

The synthetic generator writes one of these layouts; read it with that layout's name
(`load_samples(cfg.synthetic.layout, ...)`): `dataset="synthetic"` is refused with that hint.
Relative paths and `~` are expanded; errors name the file and the row as Excel numbers it.
A clip's frame files are listed by `mer.datasets.media.list_frames` (sorted by the number in the name,
the number onset/apex/offset use), which the media check here uses too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mer.datasets.catalog import casme2, casme3, deception, megc2019, samm, smic, videos
from mer.datasets.media_check import VIDEO_SUFFIXES
from mer.datasets.records import COLUMNS, Record, aus_text, finish, parse_aus, require_root
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "LAYOUTS", "VIDEO_SUFFIXES", "aus_text", "load_samples", "parse_aus"]

# dataset → (annotations required, root required even without media checks)
_NEEDS: dict[str, tuple[bool, bool]] = {
    "casme2": (True, False),
    "samm": (True, False),
    "smic": (False, True),
    "casme3": (True, False),
    "deception": (False, True),
    "videos": (True, True),
    "megc2019": (True, False),
}
LAYOUTS = ("casme2", "samm", "smic", "casme3", "deception", "videos")


def _path(value: Any) -> Path | None:
    """`~` expanded and made absolute (symlinks kept), so `path` values do not depend on the cwd."""
    return Path(str(value)).expanduser().absolute() if value not in (None, "") else None


def load_samples(
    dataset: str,
    annotations: str | Path | None,
    root: str | Path | None = None,
    *,
    check_media: bool = True,
    sources: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read one dataset's annotations (and check its media) into the sample table."""
    if dataset == "synthetic":
        raise ConfigError(
            "load_samples: a synthetic dataset is read by its layout's reader; call "
            "load_samples(<data.synthetic.layout>, annotations, root) with the generated files"
        )
    if dataset not in _NEEDS:
        raise ConfigError(
            f"data.dataset: unknown dataset {dataset!r} (expected one of {', '.join(_NEEDS)})"
        )
    ann, base = _path(annotations), _path(root)
    needs_ann, needs_root = _NEEDS[dataset]
    if needs_ann and ann is None:
        raise ConfigError(f"data.annotations: {dataset} needs its annotation file, got none")
    if dataset == "smic" and ann is not None:
        raise ConfigError(
            f"data.annotations: smic takes its classes from folders and reads no annotation "
            f"file (got {ann}); leave it empty"
        )
    _check_composite_keys(dataset, base, sources)
    if needs_root or (check_media and dataset != "megc2019"):
        base = require_root(base, dataset)
    records = _read(dataset, ann, base, check_media=check_media, sources=sources)
    table = finish(records, check_media=check_media)
    if table.empty:
        raise DataError(f"{dataset}: no clips in {ann or base}")
    log.info(
        "%s: %d clips, %d subjects from %s%s",
        dataset,
        len(table),
        table["subject"].nunique(),
        ann or base,
        "" if check_media else " (media not checked)",
    )
    return table


def _check_composite_keys(dataset: str, root: Path | None, sources: dict[str, Any] | None) -> None:
    """`data.sources` belongs to the composite and `data.root` to the others: refused rather than
    ignored, so a sweep never runs on files other than the ones its YAML names. A loaded config
    never gets here with them (mer.config.checks refuses it at load); this is the argument check
    for callers of `load_samples` with plain arguments."""
    if sources and dataset != "megc2019":
        raise ConfigError(
            f"data.sources: only megc2019 reads sources, not {dataset} (which reads data.root "
            f"and data.annotations); remove data.sources (in a variant: data.sources: {{}})"
        )
    if dataset == "megc2019" and root is not None:
        raise ConfigError(
            f"data.root: megc2019 reads each part's media from data.sources.<part>.root and "
            f"ignores data.root (got {root}); leave it empty"
        )


def _read(
    dataset: str, ann: Path | None, root: Path | None, *, check_media: bool, sources: Any
) -> list[Record]:
    if dataset == "megc2019":
        assert ann is not None
        return megc2019.read(ann, sources, check_media=check_media)
    if dataset in ("smic", "deception", "videos"):
        assert root is not None
        reader = {"smic": smic.read, "deception": deception.read, "videos": videos.read}[dataset]
        return reader(ann, root)
    assert ann is not None
    reader = {"casme2": casme2.read, "samm": samm.read, "casme3": casme3.read}[dataset]
    return reader(ann, root)
