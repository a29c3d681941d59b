"""The sweep's own summary files: predictions.csv, summary_seeds.csv, summary.csv and summary.md.

Every number is recomputed from the per-trial prediction logs on disk (mer.experiment.aggregate),
so a resumed sweep (whose earlier trials ran in another process) and a finished one give the same
table, `mer report` shows the same rows, and anyone can recompute them with `write_summary(OUT,
plan)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import ExperimentConfig, from_dict, to_dict, variant_config
from mer.experiment import formatting as fmt
from mer.experiment import layout, statements
from mer.experiment.aggregate import Aggregate, aggregate
from mer.experiment.environment import run_line, run_record
from mer.experiment.excluded import excluded_lines
from mer.experiment.plan import SweepPlan
from mer.experiment.run import load_run
from mer.util.files import write_csv_atomic, write_text_atomic
from mer.util.jsonio import to_plain

Summary = Aggregate  # what write_summary returns: table, seeds, predictions


def summarize_plan(out: str | Path, plan: SweepPlan) -> Aggregate:
    """The aggregate of a sweep's results folder, read with the driver's in-memory plan (no
    plan.json needed), counting only the plan's trials."""
    run = load_run(out, plan=to_plain(plan.to_json()), config=to_dict(plan.cfg))
    return aggregate(run)


def write_summary(out: str | Path, plan: SweepPlan) -> Aggregate:
    """Recompute everything from `OUT/trials` and write predictions.csv and the summaries."""
    out = Path(out)
    summary = summarize_plan(out, plan)
    record = run_record(out, to_dict(plan.cfg))
    _write(out, summary, summary_markdown(plan, summary, record))
    return summary


def write_folder_summary(summary: Aggregate) -> None:
    """The summary files of an ablation results folder from its own plan.json and config.yaml
    (`summary`: `aggregate(load_run(OUT))`), with no SweepPlan: what a finished sweep's
    `--resume` writes when the driver that finished it was stopped before it could."""
    run = summary.run
    if run is None:
        raise ValueError("write_folder_summary: the aggregate of a load_run(OUT) is needed")
    cfg = from_dict(run.config)
    variants = run.plan.get("variants") or {}
    selections = sorted({variant_config(cfg, v).protocol.selection for v in variants})
    reasons = {v: list(info.get("oracle_reasons") or []) for v, info in variants.items()}
    record = run_record(run.run_dir, run.config)
    text = _markdown(cfg, selections, reasons, run.plan, summary, record)
    _write(run.run_dir, summary, text)


def _write(out: Path, summary: Aggregate, markdown: str) -> None:
    write_csv_atomic(out / layout.PREDICTIONS_FILE, summary.predictions)
    write_csv_atomic(out / layout.SUMMARY_SEEDS, pd.DataFrame(summary.seeds))
    write_csv_atomic(out / layout.SUMMARY_CSV, summary.table)
    write_text_atomic(out / layout.SUMMARY_MD, markdown)


def console_table(table: pd.DataFrame) -> str:
    """The per-variant table as the sweep and `mer report` print it."""
    return fmt.text(fmt.display_table(table))


def summary_markdown(plan: SweepPlan, summary: Aggregate, record: dict | None = None) -> str:
    """summary.md: the variants table with intervals, counts and paired comparisons (as the
    report and the console show it), how to read it, the comparisons in words, the labels'
    reasons, per-dataset parts, per-seed rows and what each variant changes; `record`: the
    run's date, commit and config hash (mer.experiment.environment.run_record)."""
    selections = sorted({vp.cfg.protocol.selection for vp in plan.variants.values()})
    reasons = {name: vp.oracle_reasons for name, vp in plan.variants.items()}
    return _markdown(plan.cfg, selections, reasons, plan.to_json(), summary, record)


def _markdown(
    cfg: ExperimentConfig,
    selections: list[str],
    oracle_reasons: dict[str, list[str]],
    plan_json: dict[str, Any],
    summary: Aggregate,
    record: dict | None,
) -> str:
    table = summary.table
    lines = [f"# {cfg.name}: pooled MEGC metrics", ""]
    if record is not None:
        lines += [run_line(record), ""]
    lines += [
        f"Pooled over each (variant, seed)'s test folds ({cfg.protocol.split}, selection "
        f"{' / '.join(selections)}), then mean ± sample std over seeds "
        f"{', '.join(map(str, cfg.seeds))}; [low, high]: "
        f"{100 * cfg.report.level:g} % subject-bootstrap interval.",
        "",
        fmt.markdown(fmt.display_table(table)),
        "",
    ]
    if cfg.report.holdout_of:
        lines += [
            f"The hold-out evaluation of the search `{cfg.report.holdout_of}`: its folds test "
            "the subjects held out of that search (by design, not a partial run).",
            "",
        ]
    reading = statements.reading_line(table)
    if reading:
        lines += [reading, ""]
    lines += [f"- {line}" for line in statements.method_lines(table)]
    lines += [f"- {line}" for line in statements.comparison_sentences(table)]
    lines += [f"- {line}" for line in statements.label_lines(table)]
    if lines[-1] != "":
        lines.append("")
    oracle = table[table["oracle"].astype(bool)]
    if len(oracle):
        lines.append(
            "**oracle**: these results used test-subject information and are not "
            "comparable with protocol results (PROTOCOL.md §4):"
        )
        for name in oracle["variant"]:
            for reason in oracle_reasons.get(name) or ["a trial reported oracle input"]:
                lines.append(f"- {name}: {reason}")
        lines.append("")
    if fmt.dataset_parts(table):
        lines += ["## Per-dataset parts (same pooled predictions)", ""]
        lines += [fmt.markdown(fmt.parts_table(table)), ""]
    names = dict(zip(table["variant"], table["name"], strict=True))
    lines += [
        "## Per seed",
        "",
        fmt.markdown(fmt.seeds_table(summary.seeds, names)),
    ]
    lines += ["", "## Variants", "", fmt.markdown(fmt.variants_table(table))]
    lines += ["", *excluded_lines(plan_json, markdown=True)]
    return "\n".join(lines) + "\n"
