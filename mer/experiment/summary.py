"""The sweep's own summary files: predictions.csv, summary_seeds.csv, summary.csv and summary.md.

Every number is recomputed from the per-trial prediction logs on disk (mer.experiment.aggregate),
so a resumed sweep (whose earlier trials ran in another process) and a finished one give the same
table, `mer report` shows the same rows, and anyone can recompute them with `write_summary(OUT,
plan)`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer.config import to_dict
from mer.experiment import formatting as fmt
from mer.experiment import layout
from mer.experiment.aggregate import Aggregate, aggregate
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
    write_csv_atomic(out / layout.PREDICTIONS_FILE, summary.predictions)
    write_csv_atomic(out / layout.SUMMARY_SEEDS, pd.DataFrame(summary.seeds))
    write_csv_atomic(out / layout.SUMMARY_CSV, summary.table)
    write_text_atomic(out / layout.SUMMARY_MD, summary_markdown(plan, summary))
    return summary


def console_table(table: pd.DataFrame) -> str:
    """The per-variant table as the sweep and `mer report` print it."""
    return fmt.text(fmt.display_table(table))


def summary_markdown(plan: SweepPlan, summary: Aggregate) -> str:
    """summary.md: the variants table (as the report and the console show it), the oracle
    reasons, per-dataset parts, per-seed rows and what each variant changes."""
    cfg, table = plan.cfg, summary.table
    selections = sorted({vp.cfg.protocol.selection for vp in plan.variants.values()})
    lines = [
        f"# {cfg.name}: pooled MEGC metrics",
        "",
        f"Pooled over each (variant, seed)'s test folds ({cfg.protocol.split}, selection "
        f"{' / '.join(selections)}), then mean ± sample std over seeds "
        f"{', '.join(map(str, cfg.seeds))}.",
        "",
        fmt.markdown(fmt.display_table(table)),
        "",
    ]
    oracle = table[table["oracle"].astype(bool)]
    if len(oracle):
        lines.append(
            "**oracle**: these results used test-subject information and are not "
            "comparable with protocol results (PROTOCOL.md §4):"
        )
        for name in oracle["variant"]:
            for reason in plan.variants[name].oracle_reasons or ["a trial reported oracle input"]:
                lines.append(f"- {name}: {reason}")
        lines.append("")
    if fmt.dataset_parts(table):
        lines += ["## Per-dataset parts (same pooled predictions)", ""]
        lines += [fmt.markdown(fmt.parts_table(table)), ""]
    lines += [
        "## Per seed",
        "",
        fmt.markdown(fmt.seeds_table(summary.seeds, set(oracle["variant"]))),
    ]
    lines += ["", "## Variants", "", fmt.markdown(fmt.variants_table(table))]
    lines += ["", *excluded_lines(plan.to_json(), markdown=True)]
    return "\n".join(lines) + "\n"
