"""`mer report RUN_DIR`: the ablation table, plots and a self-contained HTML page for a sweep."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mer.report.data import RunData

__all__ = ["RunData", "ablation_table", "add_parser", "load_run", "write_report"]


def __getattr__(name: str):
    # Heavy modules (pandas, matplotlib) load on use, so `mer --help` stays fast.
    if name in ("RunData", "load_run"):
        from mer.report import data

        return getattr(data, name)
    if name == "ablation_table":
        from mer.report.tables import ablation_table

        return ablation_table
    raise AttributeError(name)


log = logging.getLogger(__name__)
FORMATS = ("md", "html", "latex")


def load_studies(run: RunData) -> dict[str, object]:
    """The Optuna studies (one per searched variant) of a search run, from its stored config."""
    import optuna

    from mer.config import from_dict
    from mer.sweep.search import open_storage, storage_url, study_name

    cfg = from_dict(run.config)
    storage = open_storage(storage_url(cfg, run.run_dir))
    studies = {}
    for variant in cfg.ablations:
        try:
            studies[variant] = optuna.load_study(
                study_name=study_name(cfg, variant), storage=storage
            )
        except KeyError:  # variant not searched yet
            log.info("no study for variant %s yet", variant)
    return studies


def write_report(
    run_dir: str | Path, formats: tuple[str, ...] = FORMATS, out: str | Path | None = None
) -> dict[str, Path]:
    """Write report.csv and the requested formats plus PNG figures under RUN_DIR/report/."""
    from mer.data.faces.table import report_lines as face_report_lines
    from mer.report.data import load_run
    from mer.report.plots import make_plots
    from mer.report.render import display_table, notes, to_html, to_latex, to_markdown
    from mer.report.tables import ablation_table, always_negative_baseline

    run = load_run(run_dir)
    out_dir = Path(out) if out else run.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = ablation_table(run)
    studies = load_studies(run) if run.mode == "search" else {}
    images = make_plots(run, table, out_dir, studies=studies)
    disp = display_table(table)
    note_lines = notes(run.name, table, always_negative_baseline(run), run.search)
    note_lines += face_report_lines(run.plan)  # face coverage, excluded clips (plan.json)
    title = f"{run.name}: {run.mode} results"
    written: dict[str, Path] = {"csv": out_dir / "report.csv"}
    table.to_csv(written["csv"], index=False)
    if "md" in formats:
        written["md"] = out_dir / "report.md"
        written["md"].write_text(to_markdown(title, disp, note_lines, images, run.search))
    if "html" in formats:
        written["html"] = out_dir / "report.html"
        written["html"].write_text(to_html(title, disp, note_lines, images, run.search))
    if "latex" in formats:
        written["latex"] = out_dir / "report.tex"
        written["latex"].write_text(to_latex(disp))
    written.update({f"png:{k}": p for k, p in images.items()})
    return written


def _run(args: argparse.Namespace) -> int:
    from mer.report.data import load_run
    from mer.report.render import display_table
    from mer.report.tables import ablation_table

    formats = FORMATS if args.format == "all" else (args.format,)
    written = write_report(args.run_dir, formats, args.out)
    run = load_run(args.run_dir)
    disp = display_table(ablation_table(run))
    print(disp.to_string(index=False))
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
