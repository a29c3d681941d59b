"""Render the ablation table and figures as Markdown, LaTeX and a self-contained HTML page.

The table's text comes from mer.experiment.formatting (`display_table`), the one formatter of
every rendering, so the report shows the numbers exactly as summary.md and the console do.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer.experiment import formatting as fmt
from mer.experiment.aggregate import PAPER_NOTE
from mer.experiment.formatting import display_table, params_text  # noqa: F401 - report names
from mer.util.jsonio import dumps


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
            f"Always-negative baseline on the same clips: UF1 {fmt.number(baseline['uf1'])}, "
            f"UAR {fmt.number(baseline['uar'])}, accuracy {fmt.number(baseline['acc'])}."
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


@dataclass
class Page:
    """What a report page shows: the display table, notes, figures and the search summary."""

    title: str
    disp: pd.DataFrame  # mer.experiment.formatting.display_table
    notes: list[str]
    images: dict[str, Path]
    search: dict | None = None


def to_markdown(page: Page) -> str:
    lines = [f"# {page.title}", "", fmt.markdown(page.disp), ""]
    lines += [f"- {n}" for n in page.notes]
    if page.search:
        lines += ["", "## Search", "", "```", dumps(page.search, indent=2), "```"]
    lines += ["", "## Figures", ""]
    lines += [f"![{k}]({p.name})" for k, p in page.images.items()]
    return "\n".join(lines) + "\n"


def to_latex(disp: pd.DataFrame) -> str:
    return fmt.latex(disp)


def to_html(page: Page) -> str:
    """One page, images embedded as data URIs: it can be mailed or opened without the folder."""
    title, search = page.title, page.search
    table_html = page.disp.to_html(index=False, escape=True, border=0, classes="ablation")
    figs = []
    for key, path in page.images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figs.append(
            f'<figure><img alt="{html.escape(key)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(key)}</figcaption></figure>"
        )
    search_html = (
        f"<h2>Search</h2><pre>{html.escape(dumps(search, indent=2))}</pre>" if search else ""
    )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in page.notes)
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
