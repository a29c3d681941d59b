"""Checks of a prepared sample table against the data config: what would otherwise be silent.

Run by `mer.data.cache` before any decoding (prepare and dry run alike: they need only the
annotations) and, for the frame count, after decoding (it needs each clip's length):

- `au_oracle` regions come from annotated AUs: a table without any is refused (every clip would
  get the whole face while its results carry the oracle tag); clips without AUs in a table that
  has some get the whole-face region, as documented in mer.data.regions, and are counted in a
  WARNING.
- selection inside the annotated window (`onset_apex_offset`, `data.frames.window`) on clips
  without an onset/offset falls back to the clip's start/end (`onset_apex_offset` without an apex
  forces none): counted in a WARNING.
- clips sharing a media file/folder (a recording with several expressions) must select inside
  their own onset..offset (`data.frames.window`), and no two may have the same window.
- `data.frames.count` above a clip's frame count repeats frames (mer.data.frames.stretch):
  counted in one WARNING per prepare, with an example clip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mer.data import frames
from mer.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mer.config import DataConfig

log = logging.getLogger(__name__)

SHOWN = 3  # sample ids quoted in a log line


def dataset_name(data_cfg: DataConfig) -> str:
    """How messages name the dataset: synthetic data by its layout too."""
    if data_cfg.is_synthetic:
        return f"{data_cfg.dataset} (layout {data_cfg.synthetic.layout})"
    return data_cfg.dataset


def _first(ids: pd.Series) -> str:
    shown = ", ".join(str(s) for s in ids.iloc[:SHOWN])
    return shown + (", ..." if len(ids) > SHOWN else "")


def _per_dataset(samples: pd.DataFrame, mask: pd.Series) -> str:
    counts = samples.loc[mask, "dataset"].value_counts().sort_index()
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def check_table(samples: pd.DataFrame, data_cfg: DataConfig) -> None:
    """The checks that need only the annotations (see the module doc)."""
    check_oracle_aus(samples, data_cfg)
    check_shared_media(samples, data_cfg)
    warn_missing_window(samples, data_cfg)


def check_shared_media(samples: pd.DataFrame, data_cfg: DataConfig) -> None:
    """Clips that would read the same frames of the same media get identical inputs (often
    with different labels): refused, naming them, before any decoding."""
    known = samples[samples["path"].notna()]  # a dry run lists no media
    shared = known[known.duplicated("path", keep=False)]
    if shared.empty:
        return
    if frames.selection_window(data_cfg) == "clip":
        path = shared["path"].iloc[0]
        raise ConfigError(
            f"data.frames.window: the selection looks at the whole media, but {len(shared)} "
            f"clips of {dataset_name(data_cfg)} share a recording with another (first: "
            f"{_first(shared.loc[shared['path'] == path, 'sample_id'])} all read {path}), so "
            "they would get identical frames; set data.frames.window: annotated to select "
            "inside each clip's onset..offset"
        )
    window = shared[["path", "onset", "offset"]].astype(str)
    same = shared[window.duplicated(keep=False)]
    if len(same):
        first = same.iloc[0]
        ids = same.loc[window.loc[same.index].eq(window.loc[same.index[0]]).all(axis=1)]
        rows = f" ({'; '.join(map(str, ids['where'].iloc[:SHOWN]))})" if "where" in ids else ""
        raise DataError(
            f"{_first(ids['sample_id'])}{rows}: {len(ids)} clips with the same onset "
            f"{first['onset']} and offset {first['offset']} in {first['path']}, so their inputs "
            f"would be identical ({len(same)} such clips in all); check the annotation rows"
        )


def check_oracle_aus(samples: pd.DataFrame, data_cfg: DataConfig) -> None:
    """au_oracle: ConfigError when no clip has AUs; WARNING with the count when some lack them."""
    if data_cfg.regions.policy != "au_oracle":
        return
    missing = samples["aus"].map(lambda aus: not list(aus or []))
    n, k = len(samples), int(missing.sum())
    if k == 0:
        return
    if k == n:
        raise ConfigError(
            f"data.regions.policy: au_oracle needs AU annotations, and none of the {n} clips of "
            f"{dataset_name(data_cfg)} has one: every clip would get the whole face while its "
            "results are tagged [oracle regions]. Use policy all (four landmark regions) or "
            "fixed (face bands, no landmarks), which need no labels"
        )
    log.warning(
        "data.regions.policy au_oracle: %d of %d clips have no AU annotation (%s; first: %s); "
        "their branch-B region is the whole face",
        k, n, _per_dataset(samples, missing), _first(samples.loc[missing, "sample_id"]),
    )  # fmt: skip


def warn_missing_window(samples: pd.DataFrame, data_cfg: DataConfig) -> None:
    """A WARNING counting the clips whose onset/offset (and apex, for onset_apex_offset) the
    annotated selection window needs but lacks."""
    if frames.selection_window(data_cfg) != "annotated":
        return
    select = data_cfg.frames.select
    uses_apex = select in frames.NEEDS_WINDOW
    no_onset, no_offset = samples["onset"].isna(), samples["offset"].isna()
    no_apex = samples["apex"].isna() if uses_apex else pd.Series(False, index=samples.index)
    lacking = no_onset | no_offset | no_apex
    if not lacking.any():
        return
    whole = no_onset & no_offset
    note = "; no clip has an annotated window, so this is the whole clip" if whole.all() else ""
    parts = [
        f"onset ({int(no_onset.sum())}: the window starts at the clip's first frame)",
        f"offset ({int(no_offset.sum())}: it ends at the last frame)",
    ] + ([f"apex ({int(no_apex.sum())}: no frame forced)"] if uses_apex else [])
    log.warning(
        "data.frames.select %s inside the annotated window: %d of %d clips lack an annotated "
        "%s (%s; first: %s)%s",
        select, int(lacking.sum()), len(samples), ", ".join(parts[:-1]) + " or " + parts[-1],
        _per_dataset(samples, lacking), _first(samples.loc[lacking, "sample_id"]), note,
    )  # fmt: skip


def distinct_frames(numbers: np.ndarray) -> np.ndarray:
    """(N,) distinct frame numbers among each clip's T chosen ones (< T: frames repeated)."""
    return np.array([len(np.unique(row)) for row in numbers], dtype=np.int64)


def warn_repeated_frames(
    sample_ids: Sequence[str], numbers: np.ndarray, data_cfg: DataConfig
) -> int:
    """One WARNING for the clips shorter than data.frames.count; returns how many there are."""
    count = data_cfg.frames.count
    distinct = distinct_frames(numbers)
    short = np.flatnonzero(distinct < count)
    if short.size == 0:
        return 0
    i = int(short[np.argmin(distinct[short])])  # the shortest clip as the example
    annotated = frames.selection_window(data_cfg) == "annotated"
    where = " in their onset..offset window" if annotated else ""
    log.warning(
        "data.frames.count: %d of %d clips have fewer than %d frames%s, so frames are repeated "
        "to fill %d (shortest: %s, %d frames); lower data.frames.count to avoid it",
        short.size, len(sample_ids), count, where, count, sample_ids[i], int(distinct[i]),
    )  # fmt: skip
    return int(short.size)
