"""Render the ablation table and figures as CSV, Markdown, LaTeX and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from mer.report.tables import PAPER_NOTE


def _pm(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.3f}"  # one seed: no spread to show
    return f"{mean:.3f} ± {std:.3f}"


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def params_text(value: Any) -> str:
    """A parameter count at a precision that tells variants apart: 812, 54.8k, 3.82M."""
    if value is None or pd.isna(value):
        return "–"
    n = float(value)
    if abs(n) < 1e3:
        return f"{n:.0f}"
    if abs(round(n / 1e3, 1)) < 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.2f}M"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable columns (strings), in the order readers scan them. A search table gets a
    `state` column (complete / PRUNED / failed / running, as the search summary has it); the
    `paper†` column only appears when some row has a paper number."""
    search = "state" in table
    parts = sorted({c[: -len("/uf1_mean")] for c in table.columns if c.endswith("/uf1_mean")})
    rows = []
    for _, r in table.iterrows():
        row = {"variant": r["variant"] + (" [oracle]" if r["oracle"] else "")}
        for m in ("uf1", "uar", "acc"):
            row[m.upper()] = _pm(r.get(f"{m}_mean"), r.get(f"{m}_std"))
        for ds in parts:
            row[f"{ds} UF1"] = _pm(r.get(f"{ds}/uf1_mean"), r.get(f"{ds}/uf1_std"))
        if "delta_uf1" in table:
            d = r["delta_uf1"]
            row[f"ΔUF1 vs {table.attrs.get('delta_reference', 'reference')}"] = (
                "–" if pd.isna(d) else f"{d:+.3f}"
            )
        row["params"] = params_text(r.get("params"))
        row["GFLOPs"] = _num(r.get("gflops"), ".3g")
        if search:  # the state says why folds are missing
            row["state"] = str(r["state"])
            lost = r["state"] == "complete" and not r["complete"]  # logs missing on disk
            row["folds"] = r["folds"] + (" INCOMPLETE" if lost else "")
        else:
            row["folds"] = r["folds"] + ("" if r["complete"] else " INCOMPLETE")
        row["seeds"] = str(r["seeds"])
        paper = [
            f"{m.upper()} {r[f'paper_{m}']:.3f}"
            for m in ("uf1", "uar", "acc")
            if not pd.isna(r.get(f"paper_{m}"))
        ]
        row["paper†"] = ", ".join(paper) if paper else ""
        rows.append(row)
    disp = pd.DataFrame(rows)
    if "paper†" in disp and not disp["paper†"].astype(bool).any():
        disp = disp.drop(columns="paper†")
    return disp


def notes(
    run_name: str, table: pd.DataFrame, baseline: dict | None, search: dict | None
) -> list[str]:
    out = [
        "UF1, UAR and accuracy are computed on the predictions of all folds pooled (MEGC2019), "
        "then averaged over seeds (± sample std; a single seed shows no ±).",
    ]
    ref = table.attrs.get("delta_reference")
    if ref:
        out.append(
            f"ΔUF1: difference to `{ref}`, the label-free reference variant; oracle rows get "
            "none (their inputs or epochs saw the test subject)."
        )
    if table["oracle"].any():
        out.append(
            "[oracle]: the variant's inputs or model selection used ground-truth information of "
            "the test subject (AU-chosen crop regions or test-set epoch selection); not a valid "
            "estimate of generalisation."
        )
    if "state" in table:
        out += _state_notes(table)
    if not table["complete"].all() and (
        "state" not in table or (table["state"] == "complete").gt(table["complete"]).any()
    ):
        out.append(
            "INCOMPLETE: some folds are missing or failed; pooled numbers cover only the "
            "folds done."
        )
    if table.filter(like="paper_").notna().any().any():
        out.append(f"† {PAPER_NOTE}.")
    if baseline:
        out.append(
            f"Always-negative baseline on the same clips: UF1 {baseline['uf1']:.3f}, UAR "
            f"{baseline['uar']:.3f}, accuracy {baseline['acc']:.3f}."
        )
    if search:
        out.append(search_note(search))
    return out


def _state_notes(table: pd.DataFrame) -> list[str]:
    """What a search table's non-complete states mean, and which fold results it left out."""
    out = []
    states = set(table["state"].astype(str))
    if "PRUNED" in states:
        out.append(
            "PRUNED: the search stopped the configuration after the folds shown (its pruner); "
            "its scores pool only those folds, and Optuna holds no objective value for it, so "
            "it is not comparable with complete rows."
        )
    if "failed" in states:
        out.append(
            "failed: a fold of the configuration failed (or it was invalid); scores, if any, "
            "pool only the folds done."
        )
    if states & {"running", "waiting"}:
        out.append("running: the search had not finished the configuration; partial numbers.")
    dropped = table.attrs.get("uncounted") or []
    if dropped:
        listed = "; ".join(f"{d['variant']} fold {d['fold']} ({d['why']})" for d in dropped)
        out.append(
            f"Not counted, as in the search summary: {listed}. These fold results came after "
            "the search closed the configuration and are left out of every number and figure."
        )
    return out


def search_note(search: dict) -> str:
    """What a search report's numbers are, and where its only clean test estimate is."""
    text = (
        "Search: each row is one configuration; UF1/UAR/ACC, confusion matrices and per-subject "
        "accuracies are on its inner-validation clips (the objective). The search folds' test "
        "scores are not shown: each fold's validation subjects are other folds' test subjects."
    )
    held = search.get("holdout") or {}
    if held.get("n"):
        return text + (
            f" Test estimate: the best configurations tested LOSO on {held['n']} held-out "
            f"subjects, never seen by the search (Search section below; run {held.get('results')})."
        )
    return text + " " + str(held.get("note") or "No clean test estimate exists.")


def to_markdown(
    title: str,
    disp: pd.DataFrame,
    note_lines: list[str],
    images: dict[str, Path],
    search: dict | None,
) -> str:
    header = "| " + " | ".join(disp.columns) + " |"
    sep = "|" + "|".join("---" for _ in disp.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in disp.itertuples(index=False)]
    lines = [f"# {title}", "", header, sep, *body, ""]
    lines += [f"- {n}" for n in note_lines]
    if search:
        lines += ["", "## Search", "", "```", _json(search), "```"]
    lines += ["", "## Figures", ""]
    lines += [f"![{k}]({p.name})" for k, p in images.items()]
    return "\n".join(lines) + "\n"


def to_latex(disp: pd.DataFrame) -> str:
    esc = {
        "&": r"\&",
        "%": r"\%",
        "_": r"\_",
        "#": r"\#",
        "±": r"$\pm$",
        "Δ": r"$\Delta$",
        "†": r"$^\dagger$",
        "–": "--",
    }

    def tex(s: str) -> str:
        for a, b in esc.items():
            s = s.replace(a, b)
        return s

    cols = "l" + "r" * (len(disp.columns) - 1)
    lines = [
        r"\begin{tabular}{" + cols + "}",
        r"\toprule",
        " & ".join(tex(c) for c in disp.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex(str(v)) for v in row) + r" \\" for row in disp.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, default=str)


def to_html(
    title: str,
    disp: pd.DataFrame,
    note_lines: list[str],
    images: dict[str, Path],
    search: dict | None,
) -> str:
    """One page, images embedded as data URIs: it can be mailed or opened without the folder."""
    table_html = disp.to_html(index=False, escape=True, border=0, classes="ablation")
    figs = []
    for key, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figs.append(
            f'<figure><img alt="{html.escape(key)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(key)}</figcaption></figure>"
        )
    search_html = f"<h2>Search</h2><pre>{html.escape(_json(search))}</pre>" if search else ""
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in note_lines)
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table.ablation{border-collapse:collapse;font-size:14px}"
        "table.ablation td,table.ablation th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}table.ablation td:first-child{text-align:left}"
        "figure{display:inline-block;margin:8px}img{max-width:560px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{table_html}"
        f"<ul>{notes_html}</ul>{search_html}<h2>Figures</h2>{''.join(figs)}</body></html>\n"
    )
