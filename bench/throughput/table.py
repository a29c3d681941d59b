"""Rendering: the printed table (one line a row, as measured), its markdown form, the e2e
breakdown, and the TAG.md / TAG.json files under --out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = [
    ("setting", "setting", 36),
    ("batch", "batch", 5),
    ("clips/s", "clips_s", 9),
    ("±%", "spread", 5),
    ("TFLOP/s", "tflops", 8),
    ("%ceil", "frac_ceiling", 6),
    ("mem MB", "mem_mb", 8),
    ("speed-up", "speedup", 8),
    ("check", "check", 20),
    ("optim", "optim", 13),
    ("setup s", "setup_s", 7),
]


def cell(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if key == "check":
        if v == "ERROR":
            return "ERROR"
        if "max_rel_diff" in row:
            return f"{v} {row['max_rel_diff']:.1e}/{row['tol']:.0e}"
        return str(v or "-")
    if v is None:
        return "-"
    if key == "clips_s":
        return f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    if key == "spread":
        return f"{100 * v:.0f}"
    if key == "frac_ceiling":
        return f"{100 * v:.2f}"
    if key == "tflops":
        return f"{v:.3g}"
    if key == "speedup":
        return f"{v:.2f}×"
    if key in ("mem_mb", "setup_s"):
        return f"{v:.0f}" if key == "mem_mb" else f"{v:.1f}"
    if key == "batch":
        extra = f"×{row['models']}m" if row.get("models", 1) > 1 else ""
        extra += f"×{row['procs']}p" if row.get("procs", 1) > 1 else ""
        return f"{v}{extra}"
    return str(v)


def format_line(row: dict[str, Any]) -> str:
    cells = [cell(row, key).ljust(width) for _, key, width in COLUMNS]
    line = " ".join(cells).rstrip()
    if row.get("error"):
        line += f"   {row['error'].splitlines()[0][:160]}"
    return line


def header_line() -> str:
    return " ".join(title.ljust(width) for title, _, width in COLUMNS).rstrip()


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(t for t, _, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in rows:
        cells = [cell(row, key) for _, key, _ in COLUMNS]
        if row.get("error"):
            cells[COLUMNS.index(("check", "check", 20))] = "ERROR: " + row["error"].splitlines()[0][
                :120
            ].replace("|", "/")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(result: dict[str, Any], title: str = "Throughput") -> str:
    meta = result.get("meta", {})
    out = [f"## {title}", ""]
    keys = [
        "date",
        "device",
        "torch",
        "cuda",
        "cudnn",
        "config",
        "params",
        "flops_per_clip",
        "ceiling",
        "tf32",
        "steps",
        "packing",
        "git",
    ]
    for key in keys:
        if key in meta:
            value = meta[key]
            if key == "flops_per_clip":
                value = f"{value / 1e9:.3g} GFLOP (forward + backward, per clip)"
            if key == "ceiling":
                value = f"{meta['ceiling_tflops']:.1f} TFLOP/s ({value})"
            out.append(f"- {key}: {value}")
    if result.get("rows"):
        out += ["", markdown_table(result["rows"])]
    skipped = result.get("skipped")
    if skipped:
        out += ["", f"Skipped (time budget): {', '.join(skipped)}"]
    if result.get("e2e"):
        out += ["", render_e2e(result["e2e"])]
    return "\n".join(out) + "\n"


def write_outputs(out: Path | None, tag: str, result: dict[str, Any]) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{tag}.md").write_text(render_markdown(result, title=tag))


def render_e2e(e2e: dict[str, Any]) -> str:
    lines = [
        "### One trial end to end (mer.train.run_fold)",
        "",
        f"{e2e['epochs']} epochs of {e2e['train_clips']} training clips, {e2e['test_clips']} test"
        f" clips, batch {e2e['batch']}, {e2e['precision']}, channels_last "
        f"{e2e['channels_last']}; overrides: {', '.join(e2e['overrides']) or 'none'}",
        "",
        "| phase | seconds | share |",
        "|---|---|---|",
    ]
    total = e2e["total_s"]
    for name, sec in e2e["phases_s"].items():
        if sec is None:
            lines.append(f"| {name} | - | - |")
        else:
            lines.append(f"| {name} | {sec:.2f} | {100 * sec / total:.1f} % |")
    lines.append(f"| total | {total:.2f} | 100 % |")
    ex = e2e["extrapolated_200_epochs"]
    lines += [
        "",
        f"Not training: {e2e['non_training_s']:.1f} s = {100 * e2e['non_training_share']:.1f} % of"
        f" this run. Epochs: first {e2e['epoch_s_first']:.2f} s (warm-up), then median "
        f"{e2e['epoch_s_median_rest']:.3f} s ({e2e['train_clips_s']:.0f} clips/s). Extrapolated to"
        f" 200 epochs: training {ex['train_s']:.0f} s, not training "
        f"{100 * ex['non_training_share']:.1f} %.",
    ]
    ray = e2e.get("ray")
    if ray:
        if ray.get("error") and "tuner_fit_s" not in ray:
            lines += ["", f"Ray Tune trial: failed ({ray['error']})"]
        else:
            lines += [
                "",
                f"Ray Tune, one trial via {ray.get('via')}: ray.init {ray['ray_init_s']:.1f} s, "
                f"Tuner.fit {ray['tuner_fit_s']:.1f} s, of which run_fold "
                f"{ray.get('trial_run_fold_total_s') or float('nan'):.1f} s (Tune overhead "
                f"{ray.get('tune_overhead_s') or float('nan'):.1f} s)"
                + (f"; error: {ray['error']}" if ray.get("error") else ""),
            ]
    return "\n".join(lines)
