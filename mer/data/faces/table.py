"""Face coverage over a prepared sample table: the columns, the `data.faces.on_low_coverage`
policy, and the summary that the manifest, plan.json, the dry run and the report show.

Sample-table columns (mer.data.cache; absent from caches built before they existed):

    face_frames     selected frames with the (tracked) face; -1: faces not looked for (no
                    landmark policy and a whole-frame branch A)
    face_coverage   face_frames / frames selected; NaN where not looked for
    filled_run      longest run of selected frames without a face (filled from the nearest)
    rejected        detections below data.faces.min_score (dlib)
    off_track       frames whose only detections lay off the tracked face (dlib, track)
    blank_skipped   blank or constant frames motion_topk passed over
    blank_selected  blank or constant frames among the chosen ones (methods that do not look at
                    pixels choose them blind)

Excluded clips are not in the table nor the arrays; they are listed in the manifest's `excluded`
(sample id, where in the annotations, media path, `reason`): `face_coverage` for
`on_low_coverage: exclude` (with the coverage), `bad_clip` for a clip that could not be prepared
under `data.on_bad_clip: exclude` (with the `error`). The same one list goes into the coverage
summary below, so plan.json, the dry run and the report show both kinds.

A clip without any face follows `data.regions.no_face` (error, or the whole frame instead of the
crops), unless `on_low_coverage` is `exclude`, which leaves it out like any clip below
`min_coverage`; `error` and `keep` concern the clips with a face in some frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mer.data.regions import NEEDS_LANDMARKS
from mer.errors import DataError

if TYPE_CHECKING:
    from mer.config import DataConfig

log = logging.getLogger(__name__)

COLUMNS = (
    "face_frames", "face_coverage", "filled_run", "rejected", "off_track", "blank_skipped",
    "blank_selected",
)  # fmt: skip
SHOWN = 5  # clips listed by name in a message or a summary
LOW_COVERAGE, BAD_CLIP = "face_coverage", "bad_clip"  # why a clip was excluded


def uses_faces(data_cfg: DataConfig) -> bool:
    """Whether a data config looks for faces (landmark regions, or a face crop for branch A)."""
    return data_cfg.regions.policy in NEEDS_LANDMARKS or data_cfg.faces.global_ == "face"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _clip_line(row: dict[str, Any], count: int) -> str:
    where = f" ({row['where']})" if row.get("where") else ""
    return (
        f"{row['sample_id']}{where}: face in {int(row['face_frames'])}/{count} frames "
        f"({_pct(float(row['face_coverage']))}, longest gap {int(row['filled_run'])})"
    )


def below(samples: pd.DataFrame, min_coverage: float) -> pd.DataFrame:
    """Rows whose measured coverage is below `min_coverage`, lowest first."""
    if "face_coverage" not in samples.columns:
        return samples.iloc[0:0]
    cov = pd.to_numeric(samples["face_coverage"], errors="coerce")
    low = samples[cov.notna() & (cov < min_coverage)]
    return low.sort_values(["face_coverage", "sample_id"], kind="stable")


def excluded_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The manifest's `excluded` list: what a reader needs to find each clip again."""
    out = []
    for r in rows.to_dict("records"):
        out.append(
            {
                "sample_id": str(r["sample_id"]),
                "where": str(r.get("where") or ""),
                "path": None if r.get("path") is None else str(r["path"]),
                "subject": str(r.get("subject", "")),
                "face_frames": int(r["face_frames"]),
                "face_coverage": round(float(r["face_coverage"]), 4),
                "filled_run": int(r["filled_run"]),
                "reason": LOW_COVERAGE,
            }
        )
    return out


def bad_clip_records(rows: pd.DataFrame, errors: Sequence[str]) -> list[dict[str, Any]]:
    """The manifest's `excluded` entries of clips that could not be prepared (`errors`: the
    failure of each row, in order, with or without the "sample (where): " prefix)."""
    out = []
    for r, error in zip(rows.to_dict("records"), errors, strict=True):
        sid, where = str(r["sample_id"]), str(r.get("where") or "")
        prefix = f"{sid} ({where}): " if where else f"{sid}: "
        out.append(
            {
                "sample_id": sid,
                "where": where,
                "path": None if r.get("path") is None else str(r["path"]),
                "subject": str(r.get("subject", "")),
                "reason": BAD_CLIP,
                "error": error.removeprefix(prefix),
            }
        )
    return out


def _reason(row: dict[str, Any]) -> str:
    return str(row.get("reason") or LOW_COVERAGE)  # caches built before reasons: coverage


def check_policy(samples: pd.DataFrame, data_cfg: DataConfig) -> None:
    """`error`: a DataError listing the clips below min_coverage; `keep`: one WARNING; also a
    WARNING counting the kept clips with filled frames. (`exclude` happened at build time.)"""
    fc = data_cfg.faces
    count = data_cfg.frames.count
    if not uses_faces(data_cfg) or "face_coverage" not in samples.columns:
        return
    low = below(samples, fc.min_coverage)
    low = low[low["face_frames"] > 0]  # no face at all: data.regions.no_face decided (whole_frame)
    if len(low) and fc.on_low_coverage == "error":
        lines = [_clip_line(r, count) for r in low.head(SHOWN).to_dict("records")]
        more = f"; ... {len(low) - SHOWN} more" if len(low) > SHOWN else ""
        raise DataError(
            f"{len(low)} of {len(samples)} clips show a face in fewer than "
            f"{_pct(fc.min_coverage)} of their {count} selected frames (data.faces.min_coverage "
            f"{fc.min_coverage:g}): {'; '.join(lines)}{more}. Their other frames would be "
            "filled from the nearest frame with a face and trained under the clip's label. "
            "Set data.faces.on_low_coverage: exclude to leave them out (listed in plan.json and "
            "the report), keep to train on them, or lower data.faces.min_coverage"
        )
    if len(low) and fc.on_low_coverage == "keep":
        log.warning(
            "data.faces.on_low_coverage keep: %d of %d clips show a face in fewer than %s of "
            "their selected frames and are kept (lowest: %s)",
            len(low), len(samples), _pct(fc.min_coverage), _clip_line(low.iloc[0], count),
        )  # fmt: skip
    filled = samples[pd.to_numeric(samples["face_coverage"], errors="coerce") < 1.0]
    if len(filled):
        worst = filled.sort_values(["face_coverage", "sample_id"], kind="stable").iloc[0]
        log.warning(
            "face coverage: %d of %d clips have selected frames without a face, filled from the "
            "nearest frame with one (lowest: %s); see face_coverage in the sample table",
            len(filled), len(samples), _clip_line(worst, count),
        )  # fmt: skip


def _int_sum(samples: pd.DataFrame, col: str) -> int | None:
    if col not in samples.columns:
        return None
    values = pd.to_numeric(samples[col], errors="coerce")
    return int(values[values >= 0].sum())


def summary(
    samples: pd.DataFrame, excluded: Sequence[dict[str, Any]], data_cfg: DataConfig
) -> dict[str, Any]:
    """Coverage of one prepared dataset, as plain data (manifest, plan.json, the report)."""
    fc = data_cfg.faces
    out: dict[str, Any] = {
        "looked_for": uses_faces(data_cfg),
        "measured": uses_faces(data_cfg) and "face_coverage" in samples.columns,
        "clips": int(len(samples)),
        "frames_per_clip": int(data_cfg.frames.count),
        "min_coverage": fc.min_coverage,
        "on_low_coverage": fc.on_low_coverage,
        "excluded": list(excluded),
        "blank_skipped": _int_sum(samples, "blank_skipped"),
        "blank_selected": _int_sum(samples, "blank_selected"),
    }
    if not out["measured"]:
        return out
    cov = pd.to_numeric(samples["face_coverage"], errors="coerce")
    low = below(samples, fc.min_coverage)
    partial = samples[cov < 1.0].sort_values(["face_coverage", "sample_id"], kind="stable")
    out.update(
        {
            "full": int((cov >= 1.0).sum()),
            "partial": int(((cov > 0) & (cov < 1.0)).sum()),
            "none": int((cov == 0).sum()),
            "below_min": int(len(low)),
            "mean_coverage": None if cov.isna().all() else round(float(cov.mean()), 4),
            "max_filled_run": int(pd.to_numeric(samples["filled_run"]).max()) if len(cov) else 0,
            "rejected": _int_sum(samples, "rejected"),
            "off_track": _int_sum(samples, "off_track"),
            "lowest": excluded_records(partial.head(SHOWN)),
        }
    )
    return out


def summary_lines(s: dict[str, Any]) -> list[str]:
    """A coverage summary as text lines (dry run, prepare log, report), then the clips excluded
    (both reasons)."""
    if not s:
        return []
    lines = _coverage_lines(s)
    t = s.get("frames_per_clip", 0)
    ex = s.get("excluded") or []
    low = [r for r in ex if _reason(r) == LOW_COVERAGE]
    bad = [r for r in ex if _reason(r) == BAD_CLIP]
    if low:
        lines.append(f"Excluded for low face coverage: {len(low)} clip(s)")
        lines += ["  excluded: " + _clip_line(r, t) for r in low]
    if bad:
        lines.append(
            f"Excluded as unusable (data.on_bad_clip: exclude): {len(bad)} clip(s) that could "
            "not be prepared"
        )
        for r in bad:
            where = f" ({r['where']})" if r.get("where") else ""
            lines.append(f"  excluded: {r['sample_id']}{where}: {r.get('error')}")
    return lines


def _coverage_lines(s: dict[str, Any]) -> list[str]:
    blank = ""
    if s.get("blank_skipped") or s.get("blank_selected"):
        blank = (
            f"; blank/constant frames: {s.get('blank_skipped') or 0} skipped by the selection, "
            f"{s.get('blank_selected') or 0} among the chosen"
        )
    if not s.get("measured"):
        if not s.get("looked_for", True):  # no faces in this config: only its exclusions
            return []
        why = "no face detection in this data config, or a cache built before coverage was kept"
        return [f"Face coverage: not measured ({why}){blank}"]
    n, t = s["clips"], s["frames_per_clip"]
    mean = s.get("mean_coverage")
    lines = [
        f"Face coverage: {s['full']} of {n} clips show the face in all {t} selected frames, "
        f"{s['partial']} in some, {s['none']} in none (mean "
        f"{'-' if mean is None or math.isnan(mean) else _pct(mean)}, longest filled gap "
        f"{s['max_filled_run']} frames); {s['below_min']} below data.faces.min_coverage "
        f"{s['min_coverage']:g} ({s['on_low_coverage']}); detections rejected (below "
        f"min_score) {s.get('rejected') or 0}, off the tracked face {s.get('off_track') or 0}"
        f"{blank}"
    ]
    for r in s.get("lowest", []):
        lines.append("  lowest: " + _clip_line(r, t))
    return lines


def check_bad_clips(excluded: Sequence[dict[str, Any]], data_cfg: DataConfig) -> None:
    """`data.on_bad_clip: error` refuses a cache that a run under `exclude` built without some
    clips (the same sources: those clips would fail again)."""
    bad = [r for r in excluded if _reason(r) == BAD_CLIP]
    if not bad or data_cfg.on_bad_clip == "exclude":
        return
    shown = "; ".join(f"{r['sample_id']}: {r.get('error')}" for r in bad[:SHOWN])
    more = f"; ... {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    raise DataError(
        f"{len(bad)} clip(s) of this data could not be prepared and were left out when it was "
        f"built under data.on_bad_clip: exclude ({shown}{more}); set data.on_bad_clip: exclude "
        "to train without them (they are listed in plan.json and the report), or fix their media"
    )


def add_columns(table: pd.DataFrame, stats: Sequence[Any], count: int) -> pd.DataFrame:
    """The coverage columns from each clip's mer.data.clips.FaceStats, in table order."""
    table = table.copy()
    table["face_frames"] = np.asarray([s.face_frames for s in stats], dtype=np.int64)
    table["face_coverage"] = np.asarray([s.coverage(count) for s in stats], dtype=np.float64)
    for col in COLUMNS[2:]:
        table[col] = np.asarray([getattr(s, col) for s in stats], dtype=np.int64)
    return table


def plan_lines(faces: dict[str, Any], variants: dict[str, list[str]]) -> list[str]:
    """Coverage per prepared dataset for the dry run, plan.json readers and the report:
    `faces` maps a data key to its summary (None: not measured yet), `variants` a data key to
    the variants using it."""
    out: list[str] = []
    for key, s in faces.items():
        who = f"data {key} ({', '.join(variants.get(key, []))})"
        if s is None:
            out.append(f"{who}: face coverage measured when the data is prepared (mer prepare)")
            continue
        lines = summary_lines(s)
        if lines:
            out.append(f"{who}: {lines[0]}")
            out += lines[1:]
    return out


def report_lines(plan: dict[str, Any]) -> list[str]:
    """The report's face coverage notes, from a sweep's plan.json (nothing for a plan written
    before coverage was recorded)."""
    faces = plan.get("faces") or {}
    variants: dict[str, list[str]] = {}
    for name, v in (plan.get("variants") or {}).items():
        variants.setdefault(str(v.get("data_key")), []).append(str(name))
    return plan_lines({k: s for k, s in faces.items() if s is not None}, variants)
