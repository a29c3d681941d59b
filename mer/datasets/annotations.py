"""Annotation readers → one sample table for every dataset (see PROTOCOL.md §1-2).

`load_samples(dataset, annotations, root)` reads a dataset as users receive it and returns one row
per annotated clip (columns `COLUMNS`, sorted by sample_id; megc2019 adds `megc_label`). With
`check_media=True` each row's frame folder / video is verified and `path` set; with False only the
annotations are read (`path` None), which is what a `--dry-run` needs. `where` says where the user
finds the clip (`FILE, sheet 'S', row N`, `FILE, line N (...)`, or the clip's folder / video for
layouts whose class is a folder), so checks run on the table later (the label scheme, ...) can
point at the row to fix; it is text for messages only and may be absent from an older cache.

Each dataset's module under mer/datasets/catalog/ says what its annotations and root are (the
README's "Your datasets" table sums them up); its spec says which of them it needs.

The synthetic generator writes one of these layouts; read it with that layout's name
(`load_samples(cfg.synthetic.layout, ...)`): `dataset="synthetic"` is refused with that hint.
Relative paths and `~` are expanded; errors name the file and the row as Excel numbers it, and
every invalid row of a read is reported at once (`data.invalid_rows`, mer/datasets/problems.py).
A clip's frame files are listed by `mer.datasets.media.list_frames` (sorted by the number in
the name, the number onset/apex/offset use), which the media check here uses too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mer.datasets import registry
from mer.datasets.media_check import VIDEO_SUFFIXES
from mer.datasets.problems import EXCLUDED_ATTR, INVALID_ROWS, collected
from mer.datasets.records import COLUMNS, aus_text, finish, parse_aus, require_root
from mer.datasets.spec import EXPRESSIONS
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "VIDEO_SUFFIXES", "aus_text", "load_samples", "parse_aus"]


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
    invalid_rows: str = "error",
    expressions: str = "micro",
) -> pd.DataFrame:
    """Read one dataset's annotations (and check its media) into the sample table.

    `invalid_rows` (`data.invalid_rows`): "error" reports every invalid annotation row at once
    (InvalidRows), "exclude" reads the others; the rows left out are the table's
    `attrs["excluded_rows"]` (mer.datasets.problems). `expressions` (`data.expressions`):
    which expressions a sheet coding micro- and macro-expressions gives (the dataset's
    `codes_macro`): micro, macro or all.
    """
    if invalid_rows not in INVALID_ROWS:
        raise ConfigError(
            f"data.invalid_rows: expected one of {', '.join(INVALID_ROWS)}, got {invalid_rows!r}"
        )
    if expressions not in EXPRESSIONS:
        raise ConfigError(
            f"data.expressions: expected one of {', '.join(EXPRESSIONS)}, got {expressions!r}"
        )
    if dataset == registry.SYNTHETIC:
        raise ConfigError(
            "load_samples: a synthetic dataset is read by its layout's reader; call "
            "load_samples(<data.synthetic.layout>, annotations, root) with the generated files"
        )
    spec = registry.get(dataset)
    ann, base = _path(annotations), _path(root)
    if spec.needs_annotations and ann is None:
        raise ConfigError(f"data.annotations: {dataset} needs its annotation file, got none")
    if not spec.reads_annotations and ann is not None:
        raise ConfigError(
            f"data.annotations: {dataset} takes its classes from folders and reads no annotation "
            f"file (got {ann}); leave it empty"
        )
    registry.check_source_keys(dataset, root=base, sources=sources or {})
    if spec.needs_root or (check_media and spec.reads_root):
        base = require_root(base, dataset)
    registry.check_expressions(dataset, expressions)
    options = {"expressions": expressions} if spec.codes_macro else {}
    if spec.parts:
        records, problems = collected(spec.read, ann, sources, check_media=check_media)
    else:
        records, problems = collected(spec.read, ann, base, **options)
    table, excluded = finish(
        records, check_media=check_media, problems=problems, invalid_rows=invalid_rows
    )
    table.attrs[EXCLUDED_ATTR] = [p.as_dict() for p in excluded]
    if table.empty:
        left = f" ({len(excluded)} invalid row(s) excluded)" if excluded else ""
        raise DataError(f"{dataset}: no clips in {ann or base}{left}")
    log.info(
        "%s: %d clips, %d subjects from %s%s%s",
        dataset,
        len(table),
        table["subject"].nunique(),
        ann or base,
        f", {len(excluded)} invalid row(s) excluded" if excluded else "",
        "" if check_media else " (media not checked)",
    )
    return table
