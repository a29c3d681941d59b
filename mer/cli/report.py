"""`mer report RUN_DIR`: write a sweep's report (tables, figures, HTML) and print the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from mer.cli import common
from mer.experiment.layout import REPORT_DIR
from mer.report import FORMATS, report_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        parents=[common.parent(config=False)],
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: claims and the console table import pandas; `mer --help` stays fast
    from mer.experiment.claim import claim_if_inside
    from mer.experiment.summary import console_table

    formats = FORMATS if args.format == "all" else (args.format,)
    dest = Path(args.out) if args.out else Path(args.run_dir) / REPORT_DIR
    # writing inside the results folder: not while a sweep (or another report) writes there
    held = claim_if_inside(args.run_dir, dest, "report", command=getattr(args, "argv", None))
    try:
        run_data, written, table = report_run(args.run_dir, formats, args.out)
    finally:
        if held is not None:
            held.release()
    print(console_table(table))
    pngs = sum(1 for k in written if k.startswith("png:"))
    for key in ("csv", "md", "html", "latex"):
        if key in written:
            print(f"{key:>5}: {written[key]}")
    print(f"figures: {pngs} PNG in {written['csv'].parent}")
    if args.wandb != "disabled":
        from mer.report.wandb_log import log_report  # lazy: wandb takes seconds to import

        log_report(run_data, written, mode=args.wandb)
    return 0
