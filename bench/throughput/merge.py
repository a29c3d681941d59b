"""Several runs' results in one report: a summary across parts, then every part's tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.throughput.table import cell, render_markdown


def summary_markdown(parts: dict[str, dict[str, Any]], top: int = 8) -> str:
    """Across parts: each part's baseline (run-to-run noise) and the fastest checked rows."""
    lines = ["## Summary", ""]
    bases = [
        f"{name} {r['clips_s']:.1f}"
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r["setting"] == "baseline" and r.get("clips_s")
    ]
    if bases:
        lines.append(
            f"Baseline clips/s in each part (each part's speed-ups use its own): "
            f"{', '.join(bases)}."
        )
    ranked = [
        (name, r)
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r.get("speedup") and r.get("check") in ("ok", "-")
    ]
    ranked.sort(key=lambda x: x[1]["speedup"], reverse=True)
    for title, pick in (
        ("same optimisation as the paper (batch 8)", [x for x in ranked if x[1]["optim"] == "yes"]),
        ("any batch", ranked),
    ):
        if not pick:
            continue
        lines += [
            "",
            f"Fastest rows, {title}:",
            "",
            "| part | setting | clips/s | speed-up | TFLOP/s | mem MB | check |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in pick[:top]:
            lines.append(
                f"| {name} | {r['setting']} | {cell(r, 'clips_s')} | {cell(r, 'speedup')} | "
                f"{cell(r, 'tflops')} | {cell(r, 'mem_mb')} | {cell(r, 'check')} |"
            )
    failed = [
        f"{name}/{r['setting']} ({r['check']})"
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r.get("check") in ("FAIL", "ERROR")
    ]
    if failed:
        lines += ["", f"Failed or errored rows: {', '.join(failed)}."]
    return "\n".join(lines) + "\n"


def merge(paths: list[Path], out: Path | None, tag: str) -> dict[str, Any]:
    parts = {}
    for path in paths:
        if path.exists():
            parts[path.stem] = json.loads(path.read_text())
        else:
            print(f"{path}: missing (that part did not run or was cut)", flush=True)
    md = summary_markdown(parts) + "\n"
    md += "\n".join(render_markdown(part, title=name) for name, part in parts.items())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{tag}.md").write_text(md)
        (out / f"{tag}.json").write_text(json.dumps({"parts": parts}, indent=1) + "\n")
    print(md, flush=True)
    return {"parts": parts}
