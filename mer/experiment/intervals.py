"""The result table's uncertainty columns: each variant's subject-bootstrap intervals and counts,
and each label-free variant's paired comparison with the reference variant.

The statistics are mer.experiment.uncertainty's (its docstring says how subjects are resampled,
how seeds combine and what "detectable" means); this module feeds it the same pooled prediction
rows the table's scores come from (mer.experiment.aggregate) and writes its results as flat
columns, so summary.csv, summary.md, the report and W&B all show one set of numbers.

Rules: the reference is `report.reference`, else the one `delta_reference` picks (never an oracle
row); oracle rows get intervals but no comparison (their inputs or epochs saw the test subject);
a search's rows are configurations on inner-validation clips: intervals, no comparison (the search
ranks them on its objective; its test numbers come from the hold-out evaluation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mer.config import ReportConfig
from mer.errors import DataError
from mer.experiment.uncertainty import (
    ClipPredictions,
    bootstrap_intervals,
    compare_to_reference,
)
from mer.metrics import POOLED_METRICS

METRICS = POOLED_METRICS
INTERVAL_COLUMNS = [
    *(f"{m}_{part}" for m in METRICS for part in ("low", "high", "se")),
    "ci_level", "ci_method", "n_boot", "boot_seed",
    "n_clips", "n_subjects", "n_classes", "class_counts", "ci_note",
]  # fmt: skip
COMPARISON_COLUMNS = [
    "reference", "n_compared",
    *(
        f"{m}_{part}"
        for m in METRICS
        for part in ("diff", "diff_low", "diff_high", "diff_se", "p", "p_holm", "detectable")
    ),
    "mcnemar_ref_only", "mcnemar_other_only", "mcnemar_p", "comparison_test", "comparison_note",
]  # fmt: skip


def report_settings(config: dict[str, Any]) -> ReportConfig:
    """The run's `report` section (defaults for a run written before it existed)."""
    return ReportConfig.model_validate((config or {}).get("report") or {})


def clip_predictions(
    frames: dict[int, pd.DataFrame], name: str, num_classes: int, split: str
) -> tuple[ClipPredictions | None, str]:
    """One variant's pooled `split` rows of each scored seed as ClipPredictions, and a note when
    the seeds did not predict the same clips (then: the clips every seed predicted).

    Clip ids are sample ids; on validation clips (a search) a subject can validate several
    folds, so there a clip is (fold, sample id)."""
    parts = []
    for seed, frame in sorted(frames.items()):
        sub = frame[frame["split"] == split]
        if len(sub):
            key = sub["sample_id"].astype(str)
            if split != "test":
                key = sub["fold"].astype(str) + "|" + key
            parts.append(sub.assign(_clip=key.to_numpy(), _seed=int(seed)))
    if not parts:
        return None, ""
    rows = pd.concat(parts, ignore_index=True)
    per_seed = [set(p["_clip"]) for p in parts]
    common = set.intersection(*per_seed)
    note = ""
    if any(len(s) != len(common) for s in per_seed):
        if not common:
            return None, "the seeds share no predicted clip: no interval"
        note = (
            f"intervals on the {len(common)} clips every seed predicted "
            f"(seeds have {', '.join(str(len(s)) for s in per_seed)})"
        )
        rows = rows[rows["_clip"].isin(common)]
    data = ClipPredictions.from_rows(
        rows["_clip"].to_numpy(), rows["subject"].astype(str).to_numpy(),
        rows["true"].to_numpy(dtype=np.int64), rows["pred"].to_numpy(dtype=np.int64),
        rows["_seed"].to_numpy(), num_classes, name=name,
    )  # fmt: skip
    return data, note


def _class_counts(data: ClipPredictions, names: list[str]) -> tuple[int, str]:
    counts = np.bincount(data.true, minlength=data.num_classes)
    text = ", ".join(f"{int(n)} {c}" for n, c in zip(counts, names, strict=False))
    return int((counts > 0).sum()), text


def add_uncertainty(
    table: pd.DataFrame,
    data: dict[str, tuple[ClipPredictions | None, str]],
    class_names: dict[str, list[str]],
    settings: ReportConfig,
    reference: str | None,
) -> None:
    """Fill the table's interval and comparison columns in place (NaN where undefined) and set
    `table.attrs`: `reference` (compared against; None: no comparison), `uncertainty` (the
    settings), `comparison_family` (variants in the Holm family), `reference_note`."""
    opts = dict(n_boot=settings.n_boot, seed=settings.seed, level=settings.level)
    opts["method"] = settings.method
    for col in INTERVAL_COLUMNS + COMPARISON_COLUMNS:
        table[col] = pd.Series([None] * len(table), dtype=object) if _text(col) else math.nan
    table["ci_note"] = ""
    table["comparison_note"] = ""
    for i, variant in enumerate(table["variant"]):
        cp, note = data.get(variant, (None, ""))
        table.at[i, "ci_note"] = note
        if cp is None:
            continue
        vi = bootstrap_intervals(cp, **opts)
        for m, iv in vi.intervals.items():
            table.at[i, f"{m}_low"], table.at[i, f"{m}_high"] = iv.low, iv.high
            table.at[i, f"{m}_se"] = iv.se
        n_classes, counts = _class_counts(cp, class_names.get(variant, []))
        table.at[i, "ci_level"], table.at[i, "ci_method"] = vi.level, vi.method
        table.at[i, "n_boot"], table.at[i, "boot_seed"] = vi.n_boot, vi.seed
        table.at[i, "n_clips"], table.at[i, "n_subjects"] = vi.n_clips, vi.n_subjects
        table.at[i, "n_classes"], table.at[i, "class_counts"] = n_classes, counts
        if vi.notes:
            table.at[i, "ci_note"] = "; ".join([n for n in (note, *vi.notes) if n])
    table.attrs["uncertainty"] = settings.model_dump()
    table.attrs["reference"] = None
    table.attrs["comparison_family"] = []
    if reference is None or data.get(reference, (None, ""))[0] is None:
        return
    ref = data[reference][0]
    assert ref is not None
    family: dict[str, ClipPredictions] = {}
    for variant, oracle in zip(table["variant"], table["oracle"].astype(bool), strict=True):
        cp = data.get(variant, (None, ""))[0]
        if variant == reference or oracle or cp is None:
            continue
        why = _not_comparable(ref, cp)
        if why:
            table.loc[table["variant"] == variant, "comparison_note"] = why
            continue
        family[variant] = cp
    table.attrs["reference"] = reference
    table.attrs["comparison_family"] = list(family)
    if not family:
        return
    comparisons = compare_to_reference(
        {reference: ref, **family}, reference, n_perm=settings.n_perm, alpha=settings.alpha, **opts
    )
    for variant, comp in comparisons.items():
        i = int(np.flatnonzero(table["variant"].to_numpy() == variant)[0])
        for key, value in comp.as_row().items():
            table.at[i, key] = value
        table.at[i, "comparison_test"] = comp.test
        table.at[i, "comparison_note"] = "; ".join(comp.notes)


def _text(column: str) -> bool:
    """Columns of text or flags (object dtype; the others are numbers, NaN when undefined)."""
    text = ("ci_method", "class_counts", "reference", "comparison_test")
    return column in text or column.endswith(("note", "_detectable"))


def _not_comparable(ref: ClipPredictions, other: ClipPredictions) -> str:
    """Why a paired comparison with the reference cannot run ('' when it can)."""
    if ref.num_classes != other.num_classes:
        return f"not compared: {other.num_classes} classes, the reference {ref.num_classes}"
    if not set(ref.seeds) & set(other.seeds):
        return "not compared: no seed in common with the reference"
    if not set(ref.clip_ids.tolist()) & set(other.clip_ids.tolist()):
        return "not compared: no clip in common with the reference"
    return ""


def safe_clip_predictions(
    frames: dict[int, pd.DataFrame], name: str, num_classes: int, split: str
) -> tuple[ClipPredictions | None, str]:
    """clip_predictions, with a prediction log it cannot read as one set of predictions per
    clip and seed (e.g. a clip logged twice) turned into a note instead of an error: a summary
    written mid-sweep must not stop the sweep."""
    try:
        return clip_predictions(frames, name, num_classes, split)
    except DataError as exc:
        return None, f"no interval: {exc}"
