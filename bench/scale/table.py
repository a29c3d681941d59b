"""The benchmark's table: one row per size, then the log-log growth of every column (least
squares slope of log(value) on log(trials): 1 = linear, 2 = quadratic) and each column
extrapolated to a target study size along that fit."""

from __future__ import annotations

import math
from typing import Any

# (header, how to get the value from a record, format); totals are extrapolated, per-trial
# values too (flat per-trial values mean slope 1 of the total)
COLUMNS: list[tuple[str, str, str]] = [
    ("trials", "trials", "{:.0f}"),
    ("wall s", "wall_s", "{:.0f}"),
    ("trials/min", "trials_per_min", "{:.1f}"),
    ("start→1st trial s", "first_trial_s", "{:.1f}"),
    ("driver CPU s", "cpu_s", "{:.1f}"),
    ("CPU ms/trial", "cpu_ms_per_trial", "{:.0f}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    ("Tune state B/trial", "tune_bytes_per_trial", "{:.0f}"),
    ("largest snapshot KB", "snapshot_kb_max", "{:.0f}"),
    ("snapshots", "snapshots", "{:.0f}"),
    ("snapshot s", "snapshot_s", "{:.2f}"),
    ("on_result s", "on_result_s", "{:.1f}"),
    ("summary s", "summary_s", "{:.2f}"),
    ("report s", "report_s", "{:.1f}"),
    ("files", "files", "{:.0f}"),
    ("MB written", "mb", "{:.1f}"),
    ("W&B files", "wandb_files", "{:.0f}"),
]
GROWTH = [c for c in COLUMNS if c[1] not in ("trials", "trials_per_min")]


def derived(rec: dict[str, Any]) -> dict[str, Any]:
    """A child's record flattened into the table's values."""
    n = rec["trials"]
    t = rec.get("timers", {})
    c = rec.get("calls", {})
    return {
        **rec,
        "trials_per_min": 60.0 * n / rec["wall_s"] if rec.get("wall_s") else None,
        "cpu_ms_per_trial": 1000.0 * rec["cpu_s"] / n,
        # the largest snapshot over the run (records from before it was measured: the last)
        "tune_bytes_per_trial": _largest_state(rec) / n,
        "snapshot_kb_max": _largest_state(rec) / 1e3,
        "snapshots": c.get("snapshot", 0),
        "snapshot_s": t.get("snapshot", 0.0),
        "on_result_s": t.get("on_result", 0.0),
        "summary_s": t.get("pooling", 0.0) + t.get("final_summary", 0.0),
        "report_s": t.get("report", 0.0),
        "mb": rec["bytes"] / 1e6,
    }


def _largest_state(rec: dict[str, Any]) -> float:
    sizes = rec.get("snapshot_bytes") or [rec["tune_state_bytes"]]
    return float(max(sizes))


def slope(xs: list[float], ys: list[float]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def extrapolate(xs: list[float], ys: list[float], target: float) -> float | None:
    """The value at `target` along the log-log line through the last two points."""
    pts = [(x, y) for x, y in zip(xs, ys) if x and y and y > 0]
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    if x0 == x1:
        return None
    b = math.log(y1 / y0) / math.log(x1 / x0)
    return y1 * (target / x1) ** b


def _fmt(fmt: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return fmt.format(v)


def markdown(records: list[dict[str, Any]], target: int) -> str:
    rows = [derived(r) for r in sorted(records, key=lambda r: r["trials"])]
    head = [c[0] for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(f, r.get(k)) for _, k, f in COLUMNS) + " |")
    xs = [float(r["trials"]) for r in rows]
    growth = ["log-log slope"]
    extra = [f"at {target:,} (last two points)"]
    for _, key, fmt in COLUMNS[1:]:
        ys = [r.get(key) for r in rows]
        if key == "trials_per_min" or any(y is None for y in ys):
            growth.append("")
            extra.append("")
            continue
        s = slope(xs, [float(y) for y in ys])
        growth.append("-" if s is None else f"{s:.2f}")
        e = extrapolate(xs, [float(y) for y in ys], target)
        extra.append(_fmt(fmt, e))
    lines.append("| " + " | ".join(growth) + " |")
    lines.append("| " + " | ".join(extra) + " |")
    return "\n".join(lines)


def resume_lines(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in sorted(records, key=lambda r: r["trials"]):
        first = r.get("first_plain")
        if first:
            runs = ", ".join(f"{x:.1f}" for x in first["runs"])
            out.append(
                f"- start → first trial of a plain `mer sweep` ({r['trials']} trials, warm "
                f"caches, nothing imported ahead), {len(first['runs'])} runs: {runs} s "
                f"(median {first['median']:.1f} s)"
            )
        res = r.get("resume")
        if res:
            out.append(
                f"- `--resume` of the finished {r['trials']}-trial sweep: "
                f"{res['since_process_start_s']:.1f} s from process start "
                f"({res['wall_s']:.1f} s in `mer sweep`), exit {res['status']}, "
                f"Ray {'imported' if res['ray_imported'] else 'not imported'}"
            )
    return out
