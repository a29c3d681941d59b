"""THE results-folder layout: every file and folder name a sweep writes, trial ids, status
words, search configuration labels, Optuna study names and the search storage URL.

    OUT/
      config.yaml  plan.json  environment.json  storage.json
      trials/{variant}/{seed}/{fold_safe}/predictions.csv, history.csv, result.json, error.txt
      predictions.csv        every counted trial's rows (+ variant, seed)
      summary_seeds.csv      pooled metrics per (variant, seed)
      summary.csv / .md      per variant (mer.experiment.summary)
      search/                best.json, summary.csv/.md, study.journal, cancelled/, holdout.yaml
      {name}-holdout/        a search's hold-out evaluation (an ablation sweep folder)
      report/  debug/  ray/  wandb/
      .mer/                  lock, holder.json, owned.json (mer.experiment.claim), state.json
                             (digests of Tune's state a run left: mer.sweep.resumecheck)

Ray-free and config-light, so the sweep, the search, `mer report` and W&B tracking all name
things the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.errors import DataError

if TYPE_CHECKING:
    from mer.config import ExperimentConfig

# ----------------------------------------------------------------------------- top-level files
CONFIG_FILE = "config.yaml"
PLAN_FILE = "plan.json"
ENVIRONMENT_FILE = "environment.json"
STORAGE_FILE = "storage.json"  # where the sweep's Tune state lives (--storage), for --resume
PREDICTIONS_FILE = "predictions.csv"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_SEEDS = "summary_seeds.csv"
TRIALS_DIR = "trials"
SEARCH_DIR = "search"
REPORT_DIR = "report"
DEBUG_DIR = "debug"
HOLDOUT_SUFFIX = "-holdout"
CLAIM_DIR = ".mer"  # the folder's lock, its holder and what a sweep wrote (mer.experiment.claim)

# What a sweep (or `mer train`, under debug/) writes in its output folder; with the
# `{name}-holdout` folders (`is_sweep_entry`), nothing else may be there.
SWEEP_ENTRIES = frozenset(
    {
        CONFIG_FILE, PLAN_FILE, ENVIRONMENT_FILE, TRIALS_DIR, "ray", "wandb", SEARCH_DIR,
        DEBUG_DIR, REPORT_DIR, SUMMARY_MD, SUMMARY_CSV, SUMMARY_SEEDS, PREDICTIONS_FILE,
        STORAGE_FILE, CLAIM_DIR,
    }
)  # fmt: skip
# What a sweep may leave next to another sweep's results without mixing them: every other sweep
# entry holds results (and a --overwrite that cannot delete one must not start).
SIDE_ENTRIES = frozenset({DEBUG_DIR, REPORT_DIR, CLAIM_DIR})


def is_sweep_entry(name: str) -> bool:
    return name in SWEEP_ENTRIES or name.endswith(HOLDOUT_SUFFIX)


# ------------------------------------------------------------------------------- trial files
TRIAL_PREDICTIONS = "predictions.csv"
TRIAL_HISTORY = "history.csv"
TRIAL_RESULT = "result.json"  # written last: its presence marks the trial filed
TRIAL_ERROR = "error.txt"
WANDB_TRIAL_MARKER = "wandb.done"  # in a trial folder: its W&B run is written
WANDB_SUMMARY_MARKER = "wandb_summary.json"  # trials/{variant}/: the state last logged to W&B
WANDB_SWEEP_ID = "sweep_id"  # in wandb/: this results folder's id, the stem of trial run ids

# One set of status words. result.json files written before this module said "done"/"failed"
# (the sweep) or nothing at all (`mer train`'s fold folders); `normalize_status` reads them all.
STATUS_DONE = "done"
STATUS_FAILED = "failed"
_STATUS_ALIASES = {
    None: STATUS_DONE,  # a result.json is written once the fold's files are complete
    "done": STATUS_DONE,
    "finished": STATUS_DONE,
    "failed": STATUS_FAILED,
    "error": STATUS_FAILED,
}


def normalize_status(raw: Any, where: str | Path = "result.json") -> str:
    """A result.json `status` as one of STATUS_DONE / STATUS_FAILED; DataError for another word."""
    key = raw.strip().lower() if isinstance(raw, str) else raw
    if key not in _STATUS_ALIASES:
        raise DataError(
            f"{where}: status {raw!r} is not a trial status (expected {STATUS_DONE!r} or "
            f"{STATUS_FAILED!r})"
        )
    return _STATUS_ALIASES[key]


# Labels of non-standard results, carried wherever a result is shown (tables, reports, W&B run
# names and tags, MEGC file names). PROTOCOL.md §4.2: every oracle result is labelled.
ORACLE_TAG = "[oracle]"
# leave-one-subject-out with clips as subjects (deception without a subject CSV): the same
# person can be in training and test
SUBJECT_DEPENDENT_TAG = "[subject-dependent]"
# W&B tags (keywords) of the same labels
WANDB_ORACLE, WANDB_PARTIAL, WANDB_SUBJECT_DEPENDENT = "oracle", "partial", "subject-dependent"


def partial_tag(tested: int, total: int) -> str:
    """A run that tested only some subjects (`protocol.folds`): `[partial: 2 of 5 subjects]`."""
    return f"[partial: {int(tested)} of {int(total)} subjects]"


def display_name(variant: str, oracle: bool, tags: Sequence[str] = ()) -> str:
    """A variant's name in tables, W&B run names and reports: oracle ones carry the oracle tag,
    then any other label (`tags`: partial, subject-dependent)."""
    return " ".join([variant, *([ORACLE_TAG] if oracle else []), *tags])


FOLD_SEP = "__"  # a fold name's "/" (megc2019: "casme2/sub01") in folder names


def fold_safe(fold: str) -> str:
    """A fold name as a folder name."""
    return fold.replace("/", FOLD_SEP)


def fold_from_safe(name: str) -> str:
    return name.replace(FOLD_SEP, "/")


def trial_id(variant: str, fold: str, seed: int) -> str:
    """A trial's id and readable Tune name: `{variant}/{fold}/s{seed}`."""
    return f"{variant}/{fold}/s{int(seed)}"


def trial_safe(variant: str, fold: str, seed: int) -> str:
    """File-system and Ray-directory form of `trial_id`."""
    return f"{variant}{FOLD_SEP}{fold_safe(fold)}{FOLD_SEP}s{int(seed)}"


def trial_rel_dir(variant: str, fold: str, seed: int) -> str:
    """Folder of a trial's files under OUT/trials/."""
    return f"{variant}/{int(seed)}/{fold_safe(fold)}"


def trial_dir(out: str | Path, variant: str, fold: str, seed: int) -> Path:
    return Path(out) / TRIALS_DIR / trial_rel_dir(variant, fold, seed)


def parse_trial_dir(trials_dir: Path, folder: Path) -> tuple[str, int, str]:
    """(variant, seed, fold) of a trial folder under `trials_dir`; DataError when the path does
    not have the layout's `{variant}/{seed}/{fold_safe}` form."""
    parts = folder.relative_to(trials_dir).parts
    if len(parts) != 3 or not parts[1].lstrip("-").isdigit():
        raise DataError(f"{folder}: not a trial folder (expected trials/VARIANT/SEED/FOLD)")
    return parts[0], int(parts[1]), fold_from_safe(parts[2])


# ---------------------------------------------------------------------------------- search
DEFAULT_STORAGE = "study.journal"
SEARCH_BEST = "best.json"
SEARCH_LEGACY = "search.json"  # best.json's name in early versions
SEARCH_SUMMARY_CSV = "summary.csv"
SEARCH_SUMMARY_MD = "summary.md"
CANCELLED_DIR = "cancelled"
HOLDOUT_CONFIG = "holdout.yaml"


def search_label(variant: str, config_id: int) -> str:
    """The name a search configuration's results are filed under (trial folders, prediction
    log, reports)."""
    return f"{variant}.c{int(config_id):04d}"


def label_variant(label: str) -> str:
    """The searched variant of a configuration label (`full.c0003` -> `full`)."""
    return label.rsplit(".c", 1)[0]


def cancel_marker(out: str | Path, variant: str, config_id: int) -> Path:
    """The file the searcher writes when it closes a configuration while its folds still run."""
    return Path(out) / SEARCH_DIR / CANCELLED_DIR / f"{variant}{FOLD_SEP}c{int(config_id):04d}"


def parse_cancel_marker(name: str) -> tuple[str, int] | None:
    """(variant, config id) of a cancel marker's file name; None for another file."""
    variant, sep, number = name.rpartition(f"{FOLD_SEP}c")
    if not sep or not number.isdigit():
        return None
    return variant, int(number)


def storage_url(cfg: ExperimentConfig, out_dir: str | Path) -> str:
    """The studies' storage: `search.storage` (URL or journal path) or OUT/search/study.journal."""
    spec = cfg.search.storage if cfg.search is not None else None
    if not spec:
        return str((Path(out_dir) / SEARCH_DIR / DEFAULT_STORAGE).resolve())
    if "://" in spec:
        return spec
    return str(Path(spec).expanduser().resolve())


def study_name(cfg: ExperimentConfig, variant: str) -> str:
    """One Optuna study per searched variant."""
    return f"{cfg.name}/{variant}"


def holdout_name(cfg: ExperimentConfig) -> str:
    """Name of a search's hold-out evaluation sweep (its results: OUT/{name})."""
    return f"{cfg.name}{HOLDOUT_SUFFIX}"


def holdout_dir(cfg: ExperimentConfig, out_dir: str | Path) -> Path:
    """Results folder of the hold-out evaluation: inside the search's own folder."""
    return Path(out_dir).expanduser().resolve() / holdout_name(cfg)
