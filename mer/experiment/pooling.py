"""A running ablation sweep's pooled rows, updated one settled trial at a time.

Why: a sweep of thousands of trials must not reread every trial's logs each time a (variant,
seed) completes (that made the driver's work per result grow with the sweep). `RunningPool.add`
reads one settled trial's record and prediction log, once, right after the driver filed it
(O(1) per trial); `seed_row` and `variant_row` pool a (variant, seed) or a variant from what was
added, when asked (O(its folds)). The numbers are the aggregation pipeline's own
(mer.experiment.aggregate.seed_row / variant_row on a RunData holding the same records and
frames, in the same order), so they equal the full pass's (`aggregate(load_run(OUT))`) row for
row; the sweep still makes that one full pass when it ends (summary.csv/md, the report) and
checks the two agree.

Not here: intervals, reference, paired comparisons, ΔUF1 — they depend on every variant, so
only the full pass computes them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from mer.experiment import layout
from mer.experiment.aggregate import seed_row, variant_row
from mer.experiment.run import RunData, concat_predictions, empty_run
from mer.experiment.store import TrialRecord


class RunningPool:
    """Settled trials of an ablation sweep's results folder, pooled on demand."""

    def __init__(self, out: str | Path, plan: dict[str, Any], config: dict[str, Any]):
        self.run: RunData = empty_run(out, plan, config)
        self._recs: dict[tuple[str, int], dict[str, TrialRecord]] = {}
        self._histories: dict[str, pd.DataFrame] = {}

    def add(self, rec: TrialRecord) -> None:
        """A trial's record as filed (finished or failed); a later record of the same trial
        (a failure retried) replaces it. A finished trial's logs are read here, once."""
        self._recs.setdefault((rec.variant, rec.seed), {})[rec.trial] = rec
        if rec.done:
            frame = rec.predictions()
            frame["variant"], frame["seed"] = rec.variant, rec.seed
            self.run.trial_predictions[rec.trial] = frame
            hist = rec.history()
            if len(hist):
                hist["variant"], hist["seed"], hist["fold"] = rec.variant, rec.seed, rec.fold
                self._histories[rec.trial] = hist
        else:
            self.run.trial_predictions.pop(rec.trial, None)
            self._histories.pop(rec.trial, None)

    def records(self, variant: str, seed: int) -> list[TrialRecord]:
        """The (variant, seed)'s records in the full pass's order (the results folder's)."""
        found = self._recs.get((variant, int(seed)), {}).values()
        return sorted(found, key=lambda r: r.path / layout.TRIAL_RESULT)

    def seed_row(self, variant: str, seed: int) -> dict[str, Any]:
        return seed_row(self.run, variant, int(seed), self.records(variant, seed))[0]

    def variant_row(self, variant: str) -> dict[str, Any]:
        """The variant's row without the columns that depend on the other variants."""
        rows = [self.seed_row(variant, s) for s in self.run.seeds]
        return variant_row(self.run, variant, rows)

    def seed_rows(self) -> list[dict[str, Any]]:
        """Every (variant, seed)'s row in plan order: the full pass's `Aggregate.seeds`."""
        return [self.seed_row(v, s) for v in self.run.variants for s in self.run.seeds]

    def view(self, variant: str) -> RunData:
        """The variant's part of the run (its predictions and histories) as a RunData, which
        the report's per-variant figures read (mer.report.plots.variant_plots)."""
        hist = [
            self._histories[r.trial]
            for s in self.run.seeds
            for r in self.records(variant, s)
            if r.trial in self._histories
        ]
        return replace(
            self.run,
            trials=[r for s in self.run.seeds for r in self.records(variant, s)],
            predictions=self.predictions(variant),
            histories=pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(),
        )

    def predictions(self, variant: str) -> pd.DataFrame:
        """The prediction rows of the variant's finished trials (every split), sorted as
        `concat_predictions` sorts them."""
        frames = [
            self.run.trial_predictions[r.trial]
            for s in self.run.seeds
            for r in self.records(variant, s)
            if r.trial in self.run.trial_predictions
        ]
        return concat_predictions(frames)
