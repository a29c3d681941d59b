"""`mer report RUN_DIR`: the ablation table, plots and a self-contained HTML page for a sweep."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mer.experiment.layout import REPORT_DIR
from mer.util.files import write_csv_atomic, write_text_atomic

if TYPE_CHECKING:
    from mer.experiment.run import RunData

__all__ = ["RunData", "ablation_table", "add_parser", "load_run", "write_report"]


def __getattr__(name: str):
    # Heavy modules (pandas, matplotlib) load on use, so `mer --help` stays fast.
    if name in ("RunData", "load_run"):
        from mer.experiment import run

        return getattr(run, name)
    if name == "ablation_table":
        from mer.report.tables import ablation_table

        return ablation_table
    raise AttributeError(name)


log = logging.getLogger(__name__)
FORMATS = ("md", "html", "latex")


def load_studies(run: RunData) -> dict[str, object]:
    """The Optuna studies (one per searched variant) of a search run, from its stored config."""
    from mer.config import from_dict
    from mer.experiment.studies import load_studies as studies_of

    cfg = from_dict(run.config)
    return studies_of(cfg, run.run_dir, cfg.ablations)


def _render(
    run: RunData, formats: tuple[str, ...], out_dir: Path
) -> tuple[dict[str, Path], object]:
    """Write report.csv, the requested formats and the figures; returns them and the table."""
    from mer.experiment import formatting as fmt
    from mer.experiment.excluded import excluded_note
    from mer.report.plots import make_plots
    from mer.report.render import Page, notes, to_html, to_latex, to_markdown
    from mer.report.tables import ablation_table, always_negative_baseline

    out_dir.mkdir(parents=True, exist_ok=True)
    table = ablation_table(run)
    studies = load_studies(run) if run.mode == "search" else {}
    images = make_plots(run, table, out_dir, studies=studies)
    page = Page(
        title=f"{run.name}: {run.mode} results",
        disp=fmt.display_table(table),
        notes=notes(run.name, table, always_negative_baseline(run), run.search)
        + excluded_note(run.plan),
        images=images,
        search=run.search,
    )
    written: dict[str, Path] = {"csv": write_csv_atomic(out_dir / "report.csv", table)}
    renderers = {"md": to_markdown, "html": to_html, "latex": lambda p: to_latex(p.disp)}
    for key, name in (("md", "report.md"), ("html", "report.html"), ("latex", "report.tex")):
        if key in formats:
            written[key] = write_text_atomic(out_dir / name, renderers[key](page))
    written.update({f"png:{k}": p for k, p in images.items()})
    return written, table


def write_report(
    run_dir: str | Path, formats: tuple[str, ...] = FORMATS, out: str | Path | None = None
) -> dict[str, Path]:
    """Write report.csv and the requested formats plus PNG figures under RUN_DIR/report/."""
    from mer.experiment.run import load_run

    run = load_run(run_dir)
    return _render(run, formats, Path(out) if out else run.run_dir / REPORT_DIR)[0]


def _run(args: argparse.Namespace) -> int:
    from mer.experiment.run import load_run
    from mer.experiment.summary import console_table

    formats = FORMATS if args.format == "all" else (args.format,)
    run = load_run(args.run_dir)
    written, table = _render(run, formats, Path(args.out) if args.out else run.run_dir / REPORT_DIR)
    print(console_table(table))
    pngs = sum(1 for k in written if k.startswith("png:"))
    for key in ("csv", "md", "html", "latex"):
        if key in written:
            print(f"{key:>5}: {written[key]}")
    print(f"figures: {pngs} PNG in {written['csv'].parent}")
    if args.wandb != "disabled":
        from mer.report.wandb_log import log_report

        log_report(run, written, mode=args.wandb)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="tables, plots and an HTML page for a sweep's output folder",
        description="Recompute pooled metrics from a sweep's prediction logs and write the "
        "ablation table (CSV, Markdown, HTML, LaTeX) and figures under RUN_DIR/report/.",
    )
    p.add_argument("run_dir", help="the sweep's output folder, e.g. results/demo")
    p.add_argument("--format", choices=(*FORMATS, "all"), default="all")
    p.add_argument("--out", default=None, help="folder for the report (default RUN_DIR/report)")
    p.add_argument(
        "--wandb",
        choices=("offline", "online", "disabled"),
        default="disabled",
        help="also log the table and figures to the sweep's W&B summary run",
    )
    p.set_defaults(func=_run)
