"""The ablation table, plots and a self-contained HTML page for a sweep (`mer report RUN_DIR`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mer.experiment.layout import REPORT_DIR
from mer.util.files import write_csv_atomic, write_text_atomic

if TYPE_CHECKING:
    from mer.experiment.run import RunData

__all__ = ["RunData", "ablation_table", "load_run", "report_run", "write_report"]


def __getattr__(name: str):
    if name in ("RunData", "load_run"):
        from mer.experiment import run  # lazy: pandas loads on use; `mer --help` imports this

        return getattr(run, name)
    if name == "ablation_table":
        from mer.report.tables import ablation_table  # lazy: pandas, scipy load on use

        return ablation_table
    raise AttributeError(name)


log = logging.getLogger(__name__)
FORMATS = ("md", "html", "latex")


def load_studies(run: RunData) -> dict[str, object]:
    """The Optuna studies (one per searched variant) of a search run, from its stored config."""
    # lazy: the config schema (pydantic, pandas) loads on use: this package stays light
    from mer.config import from_dict
    from mer.experiment.studies import load_studies as studies_of

    cfg = from_dict(run.config)
    return studies_of(cfg, run.run_dir, cfg.ablations)


def _render(
    run: RunData, formats: tuple[str, ...], out_dir: Path, table: object = None
) -> tuple[dict[str, Path], object]:
    """Write report.csv, the requested formats and the figures; returns them and the table.
    `table`: the run's ablation table when the caller has it (the sweep's own summary pass)."""
    # lazy: numpy, pandas, matplotlib, scipy load when a report is written, not on import
    from mer.data.faces.table import report_lines as face_report_lines
    from mer.experiment import formatting as fmt
    from mer.experiment import statements
    from mer.experiment.environment import run_line, run_record
    from mer.experiment.excluded import excluded_note
    from mer.report.plots import caption, make_plots
    from mer.report.render import (
        Figure,
        Page,
        Section,
        held_out_lines,
        notes,
        to_html,
        to_latex,
        to_markdown,
        variant_lines,
    )
    from mer.report.tables import ablation_table, always_negative_baseline

    out_dir.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = ablation_table(run)
    studies = load_studies(run) if run.mode == "search" else {}
    images = make_plots(run, table, out_dir, studies=studies)

    def figure(key: str) -> Figure:
        return Figure(key, images[key], caption(key, run, table))

    per_variant = {
        f"{kind}_{v}" for v in run.variants for kind in ("confusion", "subjects", "curves")
    }
    sections = []
    for _, row in table.iterrows():
        v = str(row["variant"])
        keys = [f"{kind}_{v}" for kind in ("confusion", "subjects", "curves")]
        sections.append(
            Section(
                fmt.shown_name(row),
                variant_lines(row, run.variant_info(v), table),
                [figure(k) for k in keys if k in images],
            )
        )
    page = Page(
        title=f"{run.name}: {run.mode} results",
        disp=fmt.display_table(table),
        notes=notes(run.name, table, always_negative_baseline(run), run.search)
        + face_report_lines(run.plan)  # face coverage, clips excluded (plan.json)
        + excluded_note(run.plan),  # annotation rows excluded (data.invalid_rows)
        images=images,
        search=run.search,
        run_line=run_line(run_record(run.run_dir, run.config)),
        reading=statements.reading_line(table),
        overview=[figure(k) for k in images if k not in per_variant],
        sections=sections,
        held_out=held_out_lines(run.search),
    )
    written: dict[str, Path] = {"csv": write_csv_atomic(out_dir / "report.csv", table)}
    renderers = {"md": to_markdown, "html": to_html, "latex": lambda p: to_latex(p.disp)}
    for key, name in (("md", "report.md"), ("html", "report.html"), ("latex", "report.tex")):
        if key in formats:
            written[key] = write_text_atomic(out_dir / name, renderers[key](page))
    written.update({f"png:{k}": p for k, p in images.items()})
    return written, table


def write_report(
    run_dir: str | Path,
    formats: tuple[str, ...] = FORMATS,
    out: str | Path | None = None,
    *,
    run: RunData | None = None,
    table: object = None,
) -> dict[str, Path]:
    """Write report.csv and the requested formats plus PNG figures under RUN_DIR/report/.
    `run` and `table`: the folder already read and aggregated (the sweep's final summary pass,
    mer.experiment.aggregate.Aggregate), so they are not read and computed again."""
    from mer.experiment.run import load_run  # lazy: pandas loads on use

    if run is None:
        run, table = load_run(run_dir), None
    return _render(run, formats, Path(out) if out else run.run_dir / REPORT_DIR, table)[0]


def report_run(
    run_dir: str | Path, formats: tuple[str, ...] = FORMATS, out: str | Path | None = None
) -> tuple[RunData, dict[str, Path], object]:
    """`write_report` for `mer report`, which also prints the table and may log the files to
    W&B: returns the run read, the files written and the ablation table."""
    from mer.experiment.run import load_run  # lazy: pandas loads on use

    run = load_run(run_dir)
    written, table = _render(run, formats, Path(out) if out else run.run_dir / REPORT_DIR)
    return run, written, table
