"""Render the result table and figures as Markdown, LaTeX and a self-contained HTML page.

The table's text comes from mer.experiment.formatting (`display_table`), the one formatter of
every rendering, and the sentences about intervals, comparisons and labels from
mer.experiment.statements, so the report shows the numbers and words summary.md and the console
do. Page layout: the run's date, commit and config hash; the table; how to read a difference;
notes (method, comparisons, labels); an overview figure; then one section per variant (what it
changes, its intervals and comparison, its figures together, each with a caption saying what it
shows); for a search, its held-out estimates with their intervals.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.experiment import formatting as fmt
from mer.experiment import statements
from mer.experiment.formatting import display_table, params_text  # noqa: F401 - report names
from mer.experiment.paper import PAPER_NOTE
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
            f"ΔUF1: difference to `{ref}`, the label-free reference variant, on the clips both "
            "predicted, with its paired interval; oracle rows get none (their inputs or epochs "
            "saw the test subject)."
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
    out += statements.method_lines(table)
    out += statements.comparison_sentences(table)
    out += statements.label_lines(table)
    if table.filter(regex=r"^paper_(uf1|uar|acc)$").notna().any().any():
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
        "Search: each row is one configuration; UF1/UAR/ACC (with their intervals), confusion "
        "matrices and per-subject accuracies are on its inner-validation clips (the objective; "
        "the intervals do not correct for choosing the best of many). The search folds' test "
        "scores are not shown: each fold's validation subjects are other folds' test subjects."
    )
    held = search.get("holdout") or {}
    if held.get("n"):
        return text + (
            f" Test estimate: the best configurations tested LOSO on {held['n']} held-out "
            "subjects, never seen by the search (Held-out test estimate below, with its "
            f"interval; run {held.get('results')})."
        )
    return text + " " + str(held.get("note") or "No clean test estimate exists.")


@dataclass
class Figure:
    key: str  # make_plots' key, e.g. "confusion_full"
    path: Path
    caption: str  # what the figure shows (mer.report.plots.caption)


@dataclass
class Section:
    """One variant (a search: one configuration): what it is and its figures together."""

    title: str  # the display name, with its labels
    lines: list[str]
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Page:
    """What a report page shows: the display table, notes, figures and the search summary."""

    title: str
    disp: pd.DataFrame  # mer.experiment.formatting.display_table
    notes: list[str]
    images: dict[str, Path]
    search: dict | None = None
    run_line: str = ""  # date, commit, config hash (mer.experiment.environment.run_line)
    reading: str | None = None  # how to read a difference (statements.reading_line)
    overview: list[Figure] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)  # a search's held-out estimates


def variant_lines(r: pd.Series, info: dict[str, Any], table: pd.DataFrame) -> list[str]:
    """A variant section's text: what it changes, its scores with intervals and counts, its
    comparison with the reference (or why there is none), its labels and paper numbers."""
    lines = [f"What it changes: {r.get('changes') or '(base config)'}."]
    scores = ", ".join(
        f"{head} {fmt.estimate(r.get(f'{m}_mean'), r.get(f'{m}_std'), r.get(f'{m}_low'), r.get(f'{m}_high'))}"  # noqa: E501
        for m, head in fmt.SCORE_COLUMNS.items()
    )
    counts = ""
    if not fmt.is_missing(r.get("n_clips")):
        counts = (
            f"; {fmt.count(r['n_clips'])} clips of {fmt.count(r.get('n_subjects'))} subjects, "
            f"{fmt.count(r.get('n_classes'))} classes ({r.get('class_counts')})"
        )
    lines.append(f"Scores: {scores}{counts}.")
    ref = table.attrs.get("reference")
    if ref and str(r["variant"]) == str(ref):
        lines.append("The reference of the paired comparisons.")
    elif not fmt.is_missing(r.get("uf1_diff")):
        lines.append(statements.comparison_sentence(r, str(ref)))
    elif ref and bool(r.get("oracle")):
        lines.append("Oracle: not compared with the label-free variants.")
    elif isinstance(r.get("comparison_note"), str) and r.get("comparison_note"):
        lines.append(str(r["comparison_note"]) + ".")
    for reason in info.get("oracle_reasons") or []:
        lines.append(f"[oracle]: {reason}.")
    if r.get("partial"):
        lines.append(
            f"[partial]: tests {fmt.count(r.get('subjects_tested'))} of "
            f"{fmt.count(r.get('subjects_total'))} subjects (protocol.folds)."
        )
    if info.get("subject_dependent"):
        lines.append(f"[subject-dependent]: {info['subject_dependent']}.")
    if isinstance(r.get("paper_config"), str) and r.get("paper_config"):
        paper = ", ".join(
            f"{head} {fmt.number(r.get(f'paper_{m}'))}"
            for m, head in fmt.SCORE_COLUMNS.items()
            if not fmt.is_missing(r.get(f"paper_{m}"))
        )
        lines.append(f"Paper† ({r['paper_config']}): {paper}.")
    if "state" in table and str(r.get("state")) != "complete":
        why = r.get("reason")
        lines.append(f"State: {r.get('state')}" + (f" ({why})." if isinstance(why, str) else "."))
    return lines


def held_out_lines(search: dict | None) -> list[str]:
    """A search's held-out estimates (best.json), each with its interval and counts."""
    if not search:
        return []
    section = search.get("holdout") or {}
    out = []
    for v, entry in (search.get("variants") or {}).items():
        res = entry.get("holdout") or {}
        best = entry.get("best") or {}
        if not res.get("available"):
            if section.get("n"):
                out.append(f"{v}: held-out test not available ({res.get('reason', 'unknown')}).")
            continue
        scores = ", ".join(
            f"{head} {fmt.estimate(res.get(m), res.get(f'{m}_std'), res.get(f'{m}_low'), res.get(f'{m}_high'))}"  # noqa: E501
            for m, head in fmt.SCORE_COLUMNS.items()
        )
        pct = f"{100 * float(res.get('ci_level') or 0.95):g} %"
        out.append(
            f"{v}, configuration {best.get('config_id')}: held-out test on "
            f"{fmt.count(res.get('n_subjects'))} subjects, {fmt.count(res.get('n_test'))} clips: "
            f"{scores} ({pct} subject-bootstrap intervals; {res.get('note', '')})."
        )
    sizes = section.get("training_subjects")
    if sizes:
        out.append(training_size_line(sizes))
    if not section.get("n"):
        out.append(str(section.get("note") or "No clean test estimate exists."))
    return out


def training_size_line(sizes: dict[str, Any]) -> str:
    """best.json's `holdout.training_subjects` as a sentence."""
    return (
        f"Training size: the search folds trained on {sizes.get('search_folds')} subjects, the "
        f"hold-out evaluation's folds on {sizes.get('holdout')} (same epochs): the search tuned "
        "the configuration for the smaller training set (README, Hyperparameter search)."
    )


def _md_figure(fig: Figure) -> list[str]:
    return [f"![{fig.key}]({fig.path.name})", "", f"*{fig.caption}*", ""]


def to_markdown(page: Page) -> str:
    lines = [f"# {page.title}", ""]
    if page.run_line:
        lines += [page.run_line, ""]
    lines += [fmt.markdown(page.disp), ""]
    if page.reading:
        lines += [page.reading, ""]
    lines += [f"- {n}" for n in page.notes]
    if page.held_out:
        lines += ["", "## Held-out test estimate", ""] + [f"- {n}" for n in page.held_out]
    if page.overview:
        lines += ["", "## Overview", ""]
        for fig in page.overview:
            lines += _md_figure(fig)
    if page.sections:
        lines += ["", "## Variants" if "state" not in page.disp else "## Configurations", ""]
        for sec in page.sections:
            lines += [f"### {sec.title}", ""] + [f"- {line}" for line in sec.lines] + [""]
            for fig in sec.figures:
                lines += _md_figure(fig)
    if page.search:
        lines += ["", "## Search summary (best.json)", "", "```", dumps(page.search, indent=2)]
        lines.append("```")
    return "\n".join(lines).rstrip("\n") + "\n"


def to_latex(disp: pd.DataFrame) -> str:
    return fmt.latex(disp)


def _html_figure(fig: Figure) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(fig.key)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
    )


def _html_list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in items) + "</ul>" if items else ""


def to_html(page: Page) -> str:
    """One page, images embedded as data URIs: it can be mailed or opened without the folder."""
    title, search = page.title, page.search
    table_html = page.disp.to_html(index=False, escape=True, border=0, classes="ablation")
    body = [f"<h1>{html.escape(title)}</h1>"]
    if page.run_line:
        body.append(f"<p class='run'>{html.escape(page.run_line)}</p>")
    body.append(table_html)
    if page.reading:
        body.append(f"<p class='reading'>{html.escape(page.reading)}</p>")
    body.append(_html_list(page.notes))
    if page.held_out:
        body.append("<h2>Held-out test estimate</h2>" + _html_list(page.held_out))
    if page.overview:
        body.append("<h2>Overview</h2>" + "".join(_html_figure(f) for f in page.overview))
    if page.sections:
        body.append("<h2>Variants</h2>" if "state" not in page.disp else "<h2>Configurations</h2>")
        for sec in page.sections:
            body.append(
                f"<section><h3>{html.escape(sec.title)}</h3>{_html_list(sec.lines)}"
                + "".join(_html_figure(f) for f in sec.figures)
                + "</section>"
            )
    if search:
        body.append(
            "<h2>Search summary (best.json)</h2>"
            f"<details><summary>best.json</summary><pre>{html.escape(dumps(search, indent=2))}"
            "</pre></details>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table.ablation{border-collapse:collapse;font-size:14px}"
        "table.ablation td,table.ablation th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}table.ablation td:first-child{text-align:left}"
        "p.run{color:#555}p.reading{background:#f4f4f4;padding:8px}"
        "section{border-top:1px solid #ccc;margin-top:1.5em}"
        "figure{display:inline-block;margin:8px;vertical-align:top;max-width:560px}"
        "img{max-width:560px}figcaption{font-size:13px;color:#333}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
