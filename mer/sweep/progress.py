"""What a running sweep has settled, pooled and told W&B, trial by trial.

Why apart from the session: trials end one by one, in any order, on any node, and a restarted
driver starts with some of them already on disk. Each settled trial (finished or failed) is added
to the running pool (mer.experiment.pooling: its log read once, O(1) per trial); a (variant,
seed) is logged with its pooled score once all its folds are settled, a variant's W&B summary run
is queued once all its seeds are, and marker files in the results folder keep a `--resume` from
logging any W&B run twice (or a killed driver's unlogged runs from being lost). The summary files
are written once, by the full pass when the run ends (`Session.finish`), which must agree with
the pool (`check`). The session only forwards Tune's events here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import ExperimentConfig, to_dict
from mer.errors import ConfigError
from mer.experiment import layout
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.experiment.pooling import RunningPool
from mer.experiment.store import ResultsStore
from mer.experiment.summary import Summary
from mer.sweep.payloads import LIVE_KEY
from mer.sweep.tracking import Tracker, display_rows
from mer.util.jsonio import read_json, to_plain, write_json

log = logging.getLogger(__name__)


class Progress:
    """Settled trials of one driver run, the summaries pooled from them and their W&B runs."""

    def __init__(self, plan: SweepPlan, store: ResultsStore, tracker: Tracker):
        self.plan = plan
        self.store = store
        self.out: Path = store.out
        self.tracker = tracker
        self._planned = plan.trial_ids
        records = store.records()
        self.done_at_start = {t for t, r in records.items() if r.done}
        self.finished: set[str] = set(self.done_at_start)
        self.failed: set[str] = set()
        self._variant_logged: set[str] = set()
        self._variant_queued = False  # a variant summary run was queued during the run
        # an ablation's (variant, seed)s and variants pool from the running pool; a search's
        # trials are filed under their configuration labels, which its own summary pools
        self.pool: RunningPool | None = None
        if plan.cfg.search is None:
            self.pool = RunningPool(self.out, to_plain(plan.to_json()), to_dict(plan.cfg))
            for rec in records.values():
                if rec.trial in self._planned:
                    self.pool.add(rec)
        self._settled: dict[tuple[str, int], set[str]] = {}
        for t in plan.trials:
            if t.id in self.finished:
                self._settled.setdefault((t.variant, t.seed), set()).add(t.id)
        self._figures: ThreadPoolExecutor | None = None  # draws finished variants' figures
        self._drawing: list[Future[None]] = []
        self._n_planned: dict[tuple[str, int], int] = {}
        for t in plan.trials:
            self._n_planned[(t.variant, t.seed)] = self._n_planned.get((t.variant, t.seed), 0) + 1

    # ----------------------------------------------------------------------------- trials
    def mark_done(self, spec: TrialSpec) -> int:
        """A trial's results are filed; returns how many planned trials are done now."""
        self.finished.add(spec.id)
        self.failed.discard(spec.id)
        return len(self.finished & self._planned)

    def track_trial(
        self, spec: TrialSpec, vcfg: ExperimentConfig, result: dict[str, Any], oracle: bool
    ) -> None:
        """A filed trial: queue its W&B run (unless the trial logged it live), pool what it
        completes."""
        if result.get(LIVE_KEY):
            self._marker(spec, layout.WANDB_TRIAL_MARKER)()
        else:
            self.tracker.trial(
                spec, vcfg, result, oracle, on_done=self._marker(spec, layout.WANDB_TRIAL_MARKER)
            )
        self._settle(spec)

    def trial_failed(self, spec: TrialSpec) -> None:
        """A trial failed for good (its failure is filed): pool what it completes."""
        self.failed.add(spec.id)
        self._settle(spec)

    def _marker(self, spec: TrialSpec, name: str) -> Callable[[], None]:
        path = self.store.trial_dir(spec) / name

        def touch() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

        return touch

    def catch_up_tracking(self) -> None:
        """After a restart: W&B runs of finished trials that the killed driver had not written."""
        if not self.tracker.enabled or not self.tracker.per_trial:
            return
        for rec in self.store.records().values():
            if not rec.done or (rec.path / layout.WANDB_TRIAL_MARKER).exists():
                continue
            if rec.info.get(LIVE_KEY):  # the trial wrote its run itself, as it trained
                (rec.path / layout.WANDB_TRIAL_MARKER).touch()
                continue
            try:
                spec = self.plan.spec(rec.trial)
            except ConfigError:
                continue
            payload = dict(rec.info)
            hist = rec.history()
            payload["history"] = to_plain(hist.to_dict(orient="records"))
            self.tracker.trial(
                spec,
                self.plan.variants[spec.variant].cfg,
                payload,
                bool(rec.info.get("oracle")),
                on_done=self._marker(spec, layout.WANDB_TRIAL_MARKER),
            )

    # --------------------------------------------------------------------------- variants
    def _settle(self, spec: TrialSpec) -> None:
        """Add the trial's filed record to the pool; log its (variant, seed) once all its folds
        are in (finished or failed), and queue its variant's W&B summary run once all its seeds
        are. O(1) per trial, plus O(folds) when a (variant, seed) completes."""
        variant = spec.variant
        if self.pool is None or variant not in self.plan.variants or spec.id not in self._planned:
            return
        rec = self.store.record(spec)
        if rec is not None:
            self.pool.add(rec)
        key = (variant, spec.seed)
        settled = self._settled.setdefault(key, set())
        settled.add(spec.id)
        if variant in self._variant_logged or not self._complete(key):
            return
        seed = self.pool.seed_row(variant, spec.seed)
        log.info(
            "%s seed %d: pooled UF1 %s over %d/%d folds%s",
            variant,
            spec.seed,
            f"{seed['uf1']:.4f}" if "uf1" in seed else "-",
            seed["folds_done"],
            seed["folds_total"],
            "" if seed["complete"] else ", INCOMPLETE",
        )
        if not all(self._complete((variant, s)) for s in self.plan.cfg.seeds):
            return
        row = self.pool.variant_row(variant)
        log.info(
            "variant %s finished: pooled UF1 %.4f, UAR %.4f (%s)",
            row["name"],
            row["uf1_mean"],
            row["uar_mean"],
            row["status"],
        )
        self._draw_variant(variant)
        self._variant_queued |= self._queue_variant(variant, row)

    def _draw_variant(self, variant: str) -> None:
        """The variant's report figures, now that its rows are final, drawn in a thread of
        their own (a second or more each; Tune's event loop must not wait for them): the report
        at the end reuses them (mer.report.plots draws a figure again only when what it shows
        changed). One drawing thread: pyplot is not thread-safe."""
        assert self.pool is not None
        view = self.pool.view(variant)
        if self._figures is None:
            self._figures = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mer-figures")
        self._drawing.append(self._figures.submit(_draw, view, variant, self.out))

    def wait_figures(self) -> None:
        """Wait until the variant figures queued so far are drawn (before the report draws)."""
        for job in self._drawing:
            job.result()
        self._drawing.clear()

    def _complete(self, key: tuple[str, int]) -> bool:
        return len(self._settled.get(key, ())) >= self._n_planned.get(key, 0)

    def check(self, summary: Summary) -> bool:
        """The full pass's per-(variant, seed) rows equal the pool's (the same pipeline on the
        same logs); a difference is logged as an error (the summary files hold the full pass's)."""
        if self.pool is None:
            return True
        pooled = self.pool.seed_rows()
        same = len(pooled) == len(summary.seeds) and all(
            _same_row(a, b) for a, b in zip(pooled, summary.seeds)
        )
        if not same:
            log.error(
                "the per-trial pooled rows differ from the summary's full pass (the summary "
                "files hold the full pass's numbers); please report this"
            )
        return same

    def _queue_variant(self, variant: str, row: dict[str, Any]) -> bool:
        """A finished variant's W&B summary run, from the pool (its final row comes with the
        sweep run: WandbTracker.sweep)."""
        if self.pool is None:
            return False
        seeds = [self.pool.seed_row(variant, s) for s in self.pool.run.seeds]
        return self._log_variant(variant, row, seeds, lambda: self.pool.predictions(variant))

    def _log_variant(
        self,
        variant: str,
        row: dict[str, Any],
        seeds: list[dict[str, Any]],
        predictions: Callable[[], pd.DataFrame],
        shown: dict[str, str] | None = None,
    ) -> bool:
        """Queue the variant's W&B summary run unless this exact state was logged before (a
        `--resume` of a finished sweep adds no duplicate runs). True when queued."""
        if variant in self._variant_logged:
            return False
        self._variant_logged.add(variant)
        state = {k: row.get(k) for k in ("folds_done", "folds_failed", "uf1_mean", "uar_mean")}
        marker = self.store.trials_dir / variant / layout.WANDB_SUMMARY_MARKER
        if not self.tracker.enabled:
            return False
        if marker.exists() and read_json(marker) == to_plain(state):
            return False

        def done() -> None:
            write_json(marker, state)

        self.tracker.variant(
            self.plan, variant, row, seeds, predictions(), on_done=done, display_row=shown
        )
        return True

    def log_sweep(self, summary: Summary, report: dict[str, Path]) -> None:
        """At the end of a run that was not interrupted (an interrupted run's variants are only
        paused: the --resume that finishes them logs the real runs): every variant's summary run
        not logged yet, and the sweep run when any variant run was queued."""
        shown = display_rows(summary.table)
        queued = []
        for variant in self.plan.variants:
            row = summary.table[summary.table["variant"] == variant].iloc[0].to_dict()
            seeds = [r for r in summary.seeds if r["variant"] == variant]

            def pred(variant: str = variant) -> pd.DataFrame:
                p = summary.predictions
                return p[p["variant"] == variant] if len(p) else p

            queued.append(self._log_variant(variant, row, seeds, pred, shown[variant]))
        if any(queued) or self._variant_queued:
            self.tracker.sweep(self.plan, summary.table, report=report)


def _draw(view: Any, variant: str, out: Path) -> None:
    try:
        # lazy: matplotlib takes a second to import; a sweep needs it only from here on
        from mer.report.plots import variant_plots

        variant_plots(view, variant, out / layout.REPORT_DIR)
    except Exception as exc:  # noqa: BLE001 - figures must not stop a sweep
        log.warning("could not draw the figures of %s now (the report will): %r", variant, exc)


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two seed rows hold the same keys and values (NaN equal to NaN)."""
    if set(a) != set(b):
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, float) and isinstance(w, float) and math.isnan(v) and math.isnan(w):
            continue
        if v != w:
            return False
    return True
