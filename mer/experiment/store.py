"""The one writer and reader of a results folder's trial files (layout: mer.experiment.layout).

The sweep driver writes (`ResultsStore.write_trial` / `write_failure`, `write_run_files`); the
driver on --resume, the summary and `mer report` (mer.experiment.run) read `records()`. Every
result.json ever written is readable: today's "done"/"failed", older "finished"/"error", and the
status-less files of `mer train` fold folders (layout.normalize_status).
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mer.config import dump_yaml
from mer.errors import DataError
from mer.experiment import layout
from mer.experiment.environment import environment
from mer.predlog import add_class_names
from mer.util.files import write_csv_atomic, write_text_atomic
from mer.util.jsonio import read_json, write_json

if TYPE_CHECKING:
    from mer.experiment.plan import SweepPlan, TrialSpec

log = logging.getLogger(__name__)

# Result keys Tune adds to every report, and the payload parts stored in their own files.
_NOT_INFO = frozenset(
    {
        "predictions",
        "history",
        "mer_final",
        "timestamp",
        "checkpoint_dir_name",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "should_checkpoint",
    }
)


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """A CSV the layout names; DataError naming the file when it is missing or unreadable."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file ({what})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({what}: {exc})") from None


@dataclass
class TrialRecord:
    """One trial folder with a result.json: where it is, what it is, how it ended."""

    trial: str
    variant: str  # the folder's variant (a search configuration's label for a search)
    fold: str
    seed: int
    status: str  # layout.STATUS_DONE | layout.STATUS_FAILED
    info: dict[str, Any]  # result.json as written
    path: Path

    @property
    def done(self) -> bool:
        return self.status == layout.STATUS_DONE

    def predictions(self) -> pd.DataFrame:
        return read_csv(self.path / layout.TRIAL_PREDICTIONS, f"predictions of trial {self.trial}")

    def history(self) -> pd.DataFrame:
        p = self.path / layout.TRIAL_HISTORY
        # a trial that trained no epoch writes an empty file
        return pd.read_csv(p) if p.exists() and p.read_text().strip() else pd.DataFrame()


class ResultsStore:
    """Reads and writes `OUT/trials/...`; the driver is its only writer."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.trials_dir = self.out / layout.TRIALS_DIR

    def trial_dir(self, spec: TrialSpec) -> Path:
        return self.trials_dir / spec.rel_dir

    def write_trial(self, spec: TrialSpec, payload: dict[str, Any]) -> TrialRecord:
        """Write a finished trial's logs; `result.json` goes last and marks the trial done."""
        folder = self.trial_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        pred = pd.DataFrame(payload["predictions"])
        if payload.get("class_names") and len(pred):
            pred = add_class_names(pred, payload["class_names"])
        pred["variant"] = spec.variant
        pred["seed"] = spec.seed
        write_csv_atomic(folder / layout.TRIAL_PREDICTIONS, pred)
        history = pd.DataFrame(payload.get("history") or [])
        write_csv_atomic(folder / layout.TRIAL_HISTORY, history)
        info = {k: v for k, v in payload.items() if k not in _NOT_INFO}
        info.update(
            status=layout.STATUS_DONE,
            trial=spec.id,
            variant=spec.variant,
            fold=spec.fold,
            seed=spec.seed,
        )
        (folder / layout.TRIAL_ERROR).unlink(missing_ok=True)
        write_json(folder / layout.TRIAL_RESULT, info)
        return TrialRecord(
            spec.id, spec.variant, spec.fold, spec.seed, layout.STATUS_DONE, info, folder
        )

    def write_failure(self, spec: TrialSpec, error: str, attempts: int | None = None) -> None:
        """A trial that failed permanently (after its retries); a filed result stays."""
        folder = self.trial_dir(spec)
        if self.status(spec) == layout.STATUS_DONE:
            return
        write_text_atomic(folder / layout.TRIAL_ERROR, error)
        info = {
            "status": layout.STATUS_FAILED,
            "trial": spec.id,
            "variant": spec.variant,
            "fold": spec.fold,
            "seed": spec.seed,
            "error": error.strip().splitlines()[-1:],
            "attempts": attempts,
        }
        write_json(folder / layout.TRIAL_RESULT, info)

    def record(self, spec: TrialSpec) -> TrialRecord | None:
        """The trial's record as `records()` reads it (None: no result.json yet)."""
        p = self.trial_dir(spec) / layout.TRIAL_RESULT
        if not p.exists():
            return None
        info = read_json(p, what="trial result")
        if not isinstance(info, dict):
            raise DataError(f"{p}: expected a JSON object (trial result)")
        return self._record(p, info)

    def _record(self, p: Path, info: dict[str, Any]) -> TrialRecord:
        variant, seed, fold_name = layout.parse_trial_dir(self.trials_dir, p.parent)
        fold = str(info.get("fold") or fold_name)
        trial = str(info.get("trial") or layout.trial_id(variant, fold, seed))
        status = layout.normalize_status(info.get("status"), p)
        return TrialRecord(trial, variant, fold, seed, status, info, p.parent)

    def status(self, spec: TrialSpec) -> str | None:
        """STATUS_DONE / STATUS_FAILED, or None when the trial has no result.json yet."""
        p = self.trial_dir(spec) / layout.TRIAL_RESULT
        if not p.exists():
            return None
        return layout.normalize_status(read_json(p, what="trial result").get("status"), p)

    def records(self, variant: str | None = None) -> dict[str, TrialRecord]:
        """Every trial folder with a result.json (of one variant's folder), keyed by trial id,
        in path order.

        Variant, seed and fold come from the folder (`trials/{variant}/{seed}/{fold_safe}`);
        the id from result.json when it names one."""
        out: dict[str, TrialRecord] = {}
        if not self.trials_dir.is_dir():
            return out
        top = "*" if variant is None else glob.escape(variant)
        pattern = f"{top}/*/*/{layout.TRIAL_RESULT}"
        for p in sorted(self.trials_dir.glob(pattern)):
            info = read_json(p, what="trial result")
            if not isinstance(info, dict):
                raise DataError(f"{p}: expected a JSON object (trial result)")
            rec = self._record(p, info)
            out[rec.trial] = rec
        return out

    def done_ids(self) -> set[str]:
        return {t for t, r in self.records().items() if r.done}


def write_run_files(out: str | Path, plan: SweepPlan, *, argv: list[str] | None = None) -> None:
    """config.yaml (resolved), plan.json and environment.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / layout.CONFIG_FILE, dump_yaml(plan.cfg))
    write_json(out / layout.PLAN_FILE, plan.to_json())
    write_json(out / layout.ENVIRONMENT_FILE, environment(argv))
