"""What a running sweep has settled, pooled and told W&B, trial by trial.

Why apart from the session: trials end one by one, in any order, on any node, and a restarted
driver starts with some of them already on disk. A (variant, seed) is pooled once all its folds
are settled (finished or failed), a variant's W&B summary run is queued once all its seeds are,
and marker files in the results folder keep a `--resume` from logging any W&B run twice (or a
killed driver's unlogged runs from being lost). The session only forwards Tune's events here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.errors import ConfigError
from mer.experiment import layout
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.experiment.store import ResultsStore
from mer.experiment.summary import Summary, write_summary
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
        self.done_at_start = store.done_ids()
        self.finished: set[str] = set(self.done_at_start)
        self.failed: set[str] = set()
        self._variant_logged: set[str] = set()
        self._variant_queued = False  # a variant summary run was queued during the run

    # ----------------------------------------------------------------------------- trials
    def mark_done(self, spec: TrialSpec) -> int:
        """A trial's results are filed; returns how many planned trials are done now."""
        self.finished.add(spec.id)
        self.failed.discard(spec.id)
        return len(self.finished & {t.id for t in self.plan.trials})

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
        self._maybe_variant_done(spec)

    def trial_failed(self, spec: TrialSpec) -> None:
        """A trial failed for good (its failure is filed): pool what it completes."""
        self.failed.add(spec.id)
        self._maybe_variant_done(spec)

    def _marker(self, spec: TrialSpec, name: str) -> Callable[[], None]:
        path = self.store.trial_dir(spec) / name

        def touch() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

        return touch

    def catch_up_tracking(self) -> None:
        """After a restart: W&B runs of finished trials that the killed driver had not written."""
        if not self.tracker.enabled:
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
    def _maybe_variant_done(self, spec: TrialSpec) -> None:
        """Pool a (variant, seed) once all its folds are in (finished or failed); a variant's
        W&B summary run once all its seeds are."""
        variant = spec.variant
        if variant not in self.plan.variants or variant in self._variant_logged:
            return
        settled = self.finished | self.failed
        if not {t.id for t in self.plan.trials_of(variant, spec.seed)} <= settled:
            return
        summary = write_summary(self.out, self.plan)
        seed = next(r for r in summary.seeds if r["variant"] == variant and r["seed"] == spec.seed)
        log.info(
            "%s seed %d: pooled UF1 %s over %d/%d folds%s",
            variant,
            spec.seed,
            f"{seed['uf1']:.4f}" if "uf1" in seed else "-",
            seed["folds_done"],
            seed["folds_total"],
            "" if seed["complete"] else ", INCOMPLETE",
        )
        if not {t.id for t in self.plan.trials_of(variant)} <= settled:
            return
        row = summary.table[summary.table["variant"] == variant].iloc[0].to_dict()
        log.info(
            "variant %s finished: pooled UF1 %.4f, UAR %.4f (%s)",
            row["name"],
            row["uf1_mean"],
            row["uar_mean"],
            row["status"],
        )
        self._variant_queued |= self._log_variant(summary, variant)

    def _log_variant(self, summary: Summary, variant: str) -> bool:
        """Queue the variant's W&B summary run unless this exact state was logged before (a
        `--resume` of a finished sweep adds no duplicate runs). True when queued."""
        if variant in self._variant_logged:
            return False
        self._variant_logged.add(variant)
        row = summary.table[summary.table["variant"] == variant].iloc[0].to_dict()
        state = {k: row.get(k) for k in ("folds_done", "folds_failed", "uf1_mean", "uar_mean")}
        marker = self.store.trials_dir / variant / layout.WANDB_SUMMARY_MARKER
        if not self.tracker.enabled:
            return False
        if marker.exists() and read_json(marker) == to_plain(state):
            return False
        seeds = [r for r in summary.seeds if r["variant"] == variant]
        pred = summary.predictions
        pred = pred[pred["variant"] == variant] if len(pred) else pred

        def done() -> None:
            write_json(marker, state)

        shown = display_rows(summary.table)[variant]
        self.tracker.variant(self.plan, variant, row, seeds, pred, on_done=done, display_row=shown)
        return True

    def log_sweep(self, summary: Summary, report: dict[str, Path]) -> None:
        """At the end of a run that was not interrupted (an interrupted run's variants are only
        paused: the --resume that finishes them logs the real runs): every variant's summary run
        not logged yet, and the sweep run when any variant run was queued."""
        queued = [self._log_variant(summary, variant) for variant in self.plan.variants]
        if any(queued) or self._variant_queued:
            self.tracker.sweep(self.plan, summary.table, report=report)
