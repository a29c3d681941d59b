"""The end of an ablation sweep as the user sees it (the table, where the files are, the exit
status), and `--resume` of a sweep that has nothing left to run: that table from the results
folder in a few seconds, without Ray, data or Tune.

Why without Ray: `--resume` is what job scripts and `make demo` always pass, so a finished sweep
is resumed often, and starting Ray, loading its data and restoring its Tune experiment (tens of
seconds, more with thousands of trials) would only print the same table. A sweep counts as
finished when every trial its plan.json lists has its results filed, and nothing is left for W&B
either (with tracking on: every trial's run and every variant's summary run logged, as the markers
in the results folder record); otherwise the normal path runs. Module of its own (Ray-free) so
that the command line can try it before importing Ray.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.experiment import layout
from mer.experiment.aggregate import Aggregate, aggregate
from mer.experiment.run import load_run
from mer.experiment.store import ResultsStore
from mer.experiment.summary import console_table, write_folder_summary
from mer.sweep import outdir
from mer.sweep.console import resume_command
from mer.sweep.options import RunOptions
from mer.util.jsonio import read_json, to_plain

log = logging.getLogger(__name__)


def finished_sweep(cfg: ExperimentConfig, opts: RunOptions) -> Aggregate | None:
    """With --resume, an ablation whose every planned trial finished and whose W&B runs are
    all logged: its aggregate, the summary files and report (re)written when older than its
    trials' results. None when anything is left to do (the normal path then runs)."""
    out = opts.out
    if not opts.resume or cfg.search is not None:
        return None
    if not (out / layout.PLAN_FILE).exists() or not (out / layout.CONFIG_FILE).exists():
        return None
    # held while it reads and (re)writes: refused while another mer process writes the folder
    held = outdir.claim_out_dir(cfg, opts)
    try:
        outdir.check_out_dir(cfg, opts)  # the same config and --storage, as the normal path
        return _finished(cfg, opts, out)
    finally:
        held.release()


def _finished(cfg: ExperimentConfig, opts: RunOptions, out: Path) -> Aggregate | None:
    plan = read_json(out / layout.PLAN_FILE, what="the sweep's plan")
    planned = [str(t) for t in plan.get("trials") or []]
    if plan.get("mode", "ablation") != "ablation" or not planned:
        return None
    records = ResultsStore(out).records()
    if not all(t in records and records[t].done for t in planned):
        return None
    mode = opts.wandb or cfg.tracking.wandb.mode
    per_trial = mode != "disabled" and cfg.tracking.wandb.granularity == "trial"
    if per_trial and not all(
        (records[t].path / layout.WANDB_TRIAL_MARKER).exists() for t in planned
    ):
        return None
    summary = aggregate(load_run(out))
    if mode != "disabled" and not _variants_logged(out, summary):
        return None
    newest = max(records[t].path.joinpath(layout.TRIAL_RESULT).stat().st_mtime for t in planned)
    written = [out / layout.SUMMARY_MD, out / layout.REPORT_DIR / "report.html"]
    if any(not p.exists() or p.stat().st_mtime < newest for p in written):
        log.info("--resume: the sweep in %s is finished; writing its summary and report", out)
        write_folder_summary(summary)
        _report(out, summary)
    else:
        log.info("--resume: the sweep in %s is finished; nothing to run", out)
    return summary


def _variants_logged(out: Path, summary: Aggregate) -> bool:
    """Every variant's W&B summary run was logged with the table's current state."""
    for _, row in summary.table.iterrows():
        state = {k: row.get(k) for k in ("folds_done", "folds_failed", "uf1_mean", "uar_mean")}
        marker = out / layout.TRIALS_DIR / str(row["variant"]) / layout.WANDB_SUMMARY_MARKER
        if not marker.exists() or read_json(marker) != to_plain(state):
            return False
    return True


def _report(out: Path, summary: Aggregate) -> None:
    from mer.report import write_report  # lazy: matplotlib takes a second to import

    try:
        write_report(out, run=summary.run, table=summary.table)
    except Exception:  # noqa: BLE001 - reporting must not lose a finished sweep
        log.exception("could not write the report; run `mer report %s` to retry", out)


def print_outcome(
    cfg: ExperimentConfig,
    out: Path,
    summary: Aggregate,
    *,
    interrupted: bool,
    argv: list[str] | None = None,
) -> int:
    """Print the per-variant table and what is left to do; the exit status: 0 when every trial
    finished, 1 when some failed or did not run (INCOMPLETE), 130 when interrupted (with the
    command that continues it, from `argv`: mer.sweep.console.resume_command)."""
    table: Any = summary.table
    print(
        f"\n{cfg.name}: pooled test metrics per variant, with "
        f"{cfg.report.level:.0%} subject-bootstrap intervals (mean ± std over seeds)\n"
    )
    print(console_table(table))
    print(f"\nresults: {out} (summary.md, summary.csv, predictions.csv, trials/)")
    failed = int(table["folds_failed"].sum())
    missing = int((table["folds_total"] - table["folds_done"]).sum()) - failed
    if interrupted:
        again = resume_command(argv)
        print(f"INTERRUPTED: {missing} trial(s) not finished; continue with: {again}")
        return 130
    if failed or missing:
        see = f"see {out}/trials/*/*/*/error.txt; " if failed else ""
        print(
            f"INCOMPLETE: {failed} trial(s) failed, {missing} not run; {see}rerun with --resume "
            "to retry them"
        )
        return 1
    return 0
