"""Evaluation folds: LOSO, the MEGC2019 composite, subject k-fold, inner-validation subjects.

Folds are built from the sample table alone (no media), so a `--dry-run` plan equals the plan of a
real run. Everything here is a pure function of (samples, protocol config, seed): subjects are
sorted before any random draw, and random draws use a generator seeded by (seed, fold name).

Validity (PROTOCOL.md §4): a fold's test subjects never appear in its training or validation rows;
validation subjects are drawn from the fold's training subjects only and removed from its training
rows, so an epoch or hyperparameter chosen on them never looks at the test subject.

A hyperparameter search sees the labels of every subject in its folds (a fold's validation subjects
are other folds' test subjects), so its folds cannot also give the test estimate of the
configuration it picks. `holdout_subjects` sets subjects aside before the search, without looking at
labels; `make_folds(..., exclude_subjects=...)` builds the search folds without them.
"""

from __future__ import annotations

import difflib
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/val/test split. Row indices are positions in the sample table (int64, sorted).

    ``eq=False``: folds compare by identity (array fields have no truth value); compare names.
    """

    name: str  # test subject id (e.g. "casme2/sub01"), or "kfold0".. for group_kfold
    index: int  # position in the protocol's fixed fold order (before any `protocol.folds` filter)
    test_subjects: tuple[str, ...]
    train: np.ndarray
    val: np.ndarray  # inner-validation rows (subjects held out of training); may be empty
    test: np.ndarray
    val_subjects: tuple[str, ...] = ()

    @property
    def safe_name(self) -> str:
        """File-system form of the name ("/" → "__", as in OUT/trials/ paths)."""
        return self.name.replace("/", "__")


# ------------------------------------------------------------------------------------- helpers
def _subjects(samples: pd.DataFrame) -> np.ndarray:
    if not isinstance(samples, pd.DataFrame):
        raise DataError(f"sample table: expected a DataFrame, got {type(samples).__name__}")
    if "subject" not in samples.columns:
        raise DataError(
            f"sample table: no 'subject' column (has {', '.join(map(str, samples.columns))})"
        )
    if samples.empty:
        raise DataError("sample table: no samples to split into folds")
    col = samples["subject"]
    missing = np.flatnonzero(col.isna().to_numpy())
    if missing.size:
        i = int(missing[0])
        sid = samples["sample_id"].iloc[i] if "sample_id" in samples.columns else f"row {i}"
        raise DataError(
            f"sample table: {sid} has no subject ({missing.size} row(s) without one); every clip "
            "needs the id of the person filmed"
        )
    return col.astype(str).to_numpy()


def _labels_of(samples: pd.DataFrame) -> np.ndarray | None:
    if "label" not in samples.columns:
        return None
    lab = samples["label"]
    if lab.isna().any():
        return None
    return lab.to_numpy()


def _parse_split(split: str) -> tuple[str, int | None]:
    split = str(split).strip()
    if split in ("loso", "megc2019"):
        return split, None
    if split.startswith("group_kfold:"):
        k_text = split.split(":", 1)[1]
        if k_text.isdigit() and int(k_text) >= 2:
            return "group_kfold", int(k_text)
        raise ConfigError(f"protocol.split: group_kfold:K needs an integer K >= 2, got {split!r}")
    close = difflib.get_close_matches(split, ["loso", "megc2019", "group_kfold:5"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"protocol.split: expected loso, megc2019 or group_kfold:K, got {split!r}{hint}"
    )


def _rng(seed: int, fold_name: str, purpose: str) -> np.random.Generator:
    """Generator fixed by (seed, fold name, purpose); independent of fold order or filtering."""
    key = zlib.crc32(f"{purpose}:{fold_name}".encode())
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, key])


def _check_namespaced(samples: pd.DataFrame, subjects: np.ndarray) -> None:
    """megc2019: subjects must be `dataset/subject` so ids from different datasets never collide."""
    bad = np.flatnonzero(["/" not in s for s in subjects.tolist()])
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"protocol.split megc2019: subject {subjects[i]!r} (row {i}) is not namespaced by "
            "dataset; expected ids like 'casme2/sub01', 'samm/006', 'smic/s01' "
            f"({bad.size} row(s) affected)"
        )
    if "dataset" in samples.columns:
        ds = samples["dataset"].astype(str).to_numpy()
        prefix = np.array([s.split("/", 1)[0] for s in subjects])
        wrong = np.flatnonzero(prefix != ds)
        if wrong.size:
            i = int(wrong[0])
            raise DataError(
                f"protocol.split megc2019: row {i} has dataset {ds[i]!r} but subject "
                f"{subjects[i]!r}; the subject must start with '{ds[i]}/'"
            )


def _kfold_groups(subjects: np.ndarray, k: int, seed: int, note: str = "") -> list[list[str]]:
    """K subject groups with near-equal clip counts: seeded shuffle, then largest-first greedy."""
    names, counts = np.unique(subjects, return_counts=True)  # sorted names
    if k > len(names):
        raise ConfigError(
            f"protocol.split: group_kfold:{k} needs at least {k} subjects; the samples have "
            f"{len(names)}{note}"
        )
    rng = _rng(seed, "all", "group_kfold")
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]  # ties keep the seeded order
    groups: list[list[str]] = [[] for _ in range(k)]
    load = np.zeros(k, dtype=np.int64)
    for j in order:
        # least-loaded group; ties → fewest subjects, then lowest index
        g = min(range(k), key=lambda i: (load[i], len(groups[i]), i))
        groups[g].append(str(names[j]))
        load[g] += counts[j]
    return [sorted(g) for g in groups]


def choose_val_subjects(
    candidates: Sequence[str],
    n: int,
    subject_classes: dict[str, set[Any]],
    rng: np.random.Generator,
) -> list[str]:
    """`n` subjects from `candidates`, preferring a set whose clips cover the most classes.

    Greedy max-coverage over a seeded random order: each pick is the first subject (in that order)
    adding the most classes not yet covered; once nothing adds a class, the rest follow the random
    order. Returned sorted.
    """
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    chosen: list[str] = []
    covered: set[Any] = set()
    remaining = list(order)
    while len(chosen) < n:
        gains = [len(subject_classes.get(s, set()) - covered) for s in remaining]
        best = int(np.argmax(gains)) if gains else 0
        pick = remaining.pop(best)
        chosen.append(pick)
        covered |= subject_classes.get(pick, set())
    return sorted(chosen)


# ------------------------------------------------------------------------------------ hold-out
def _subject_datasets(samples: pd.DataFrame, subjects: np.ndarray) -> dict[str, str]:
    """Subject → its dataset (the `dataset` column; "" without one). DataError if it has two."""
    if "dataset" not in samples.columns:
        return {s: "" for s in subjects.tolist()}
    datasets = samples["dataset"].astype(str).to_numpy()
    pairs = pd.DataFrame({"subject": subjects, "dataset": datasets})
    per = pairs.drop_duplicates().groupby("subject", sort=True)["dataset"].agg(list)
    mixed = [(s, ds) for s, ds in per.items() if len(ds) > 1]
    if mixed:
        s, ds = mixed[0]
        raise DataError(
            f"sample table: subject {s!r} appears in datasets {', '.join(sorted(ds))}; one subject "
            "id per person, namespaced by dataset (e.g. 'casme2/sub01')"
        )
    return {str(s): str(ds[0]) for s, ds in per.items()}


def _quotas(sizes: dict[str, int], n: int) -> dict[str, int]:
    """`n` split over strata in proportion to `sizes` (largest remainder; ties: larger stratum,
    then name), so the quotas sum to `n` exactly and none exceeds its stratum."""
    total = sum(sizes.values())
    exact = {d: n * m / total for d, m in sizes.items()}
    quota = {d: int(np.floor(x)) for d, x in exact.items()}
    order = sorted(sizes, key=lambda d: (-(exact[d] - quota[d]), -sizes[d], d))
    for d in order[: n - sum(quota.values())]:
        quota[d] += 1
    return quota


def holdout_subjects(samples: pd.DataFrame, n: int, seed: int) -> list[str]:
    """`n` subjects to set aside before a hyperparameter search (`search.holdout_subjects`).

    Label-free and deterministic: only the `subject` (and `dataset`) columns are read. Within each
    dataset, its subjects are sorted and shuffled by (`seed`, dataset); a composite table (several
    values in `dataset`, e.g. megc2019) gives each dataset a share of `n` proportional to its
    number of subjects (largest remainder). Returned sorted. ConfigError when `n` leaves no subject
    for the search.
    """
    n = int(n)
    if n < 0:
        raise ConfigError(f"search.holdout_subjects: expected a value >= 0, got {n}")
    if n == 0:
        return []
    subjects = _subjects(samples)
    of = _subject_datasets(samples, subjects)
    if n >= len(of):
        raise ConfigError(
            f"search.holdout_subjects: {n} held-out subject(s) leave none for the search; the "
            f"samples have {len(of)} subject(s), so hold out at most {len(of) - 1} (and leave "
            "enough for protocol.split and protocol.val_subjects)"
        )
    strata: dict[str, list[str]] = {}
    for s in sorted(of):
        strata.setdefault(of[s], []).append(s)
    quota = _quotas({d: len(members) for d, members in strata.items()}, n)
    chosen: list[str] = []
    for d in sorted(strata):
        members = strata[d]
        order = _rng(seed, d, "holdout").permutation(len(members))
        chosen += [members[i] for i in order[: quota[d]]]
    return sorted(chosen)


# ---------------------------------------------------------------------------------------- folds
def make_folds(
    samples: pd.DataFrame,
    protocol: Any,
    seed: int,
    *,
    exclude_subjects: Iterable[str] = (),
) -> list[Fold]:
    """Folds of `samples` for `protocol` (a ProtocolConfig: split, val_subjects, folds).

    Splits: ``loso`` (one fold per subject), ``megc2019`` (LOSO over dataset-namespaced subjects of
    the composite), ``group_kfold:K`` (K subject groups balanced by clip count, drawn by `seed`).
    Subject folds are ordered by name, k-fold folds by number. ``protocol.val_subjects`` subjects
    per fold are moved from training to validation (class-aware, fixed by seed and fold name).
    ``protocol.folds`` (non-empty) keeps only those folds; indices keep their full-order values.
    ``exclude_subjects`` (a search's held-out subjects) are in no split of any fold: the folds are
    those of the other subjects, with row indices still into the full `samples` table.
    """
    subjects = _subjects(samples)
    kind, k = _parse_split(getattr(protocol, "split", "loso"))
    n_val = int(getattr(protocol, "val_subjects", 0) or 0)
    if n_val < 0:
        raise ConfigError(f"protocol.val_subjects: expected a value >= 0, got {n_val}")
    everyone = sorted(set(subjects.tolist()))
    excluded = sorted({str(s) for s in exclude_subjects})
    unknown = [s for s in excluded if s not in set(everyone)]
    if unknown:
        raise ConfigError(
            f"held-out subject(s) {', '.join(unknown)} are not in the sample table "
            f"(subjects: {', '.join(everyone[:8])}{' ...' if len(everyone) > 8 else ''})"
        )
    is_excluded = np.isin(subjects, excluded) if excluded else np.zeros(len(subjects), bool)
    unique = [s for s in everyone if s not in set(excluded)]
    note = f" after excluding {len(excluded)} held-out subject(s)" if excluded else ""
    if kind == "megc2019":
        _check_namespaced(samples, subjects)
    if kind in ("loso", "megc2019"):
        if len(unique) < 2:
            raise ConfigError(
                f"protocol.split {kind}: needs at least 2 subjects; the samples have {len(unique)}"
                f"{note} ({', '.join(unique)})"
            )
        groups = [(s, [s]) for s in unique]
    else:
        assert k is not None
        kept = subjects[~is_excluded]
        groups = [(f"kfold{i}", g) for i, g in enumerate(_kfold_groups(kept, k, seed, note))]

    labels = _labels_of(samples)
    subject_classes: dict[str, set[Any]] = {s: set() for s in unique}
    if labels is not None:
        kept_labels = labels[~is_excluded].tolist()
        for s, lab in zip(subjects[~is_excluded].tolist(), kept_labels, strict=True):
            subject_classes[s].add(lab)

    folds: list[Fold] = []
    for index, (name, test_subj) in enumerate(groups):
        test_set = set(test_subj)
        train_subj = [s for s in unique if s not in test_set]
        val_subj: list[str] = []
        if n_val:
            if n_val >= len(train_subj):
                raise ConfigError(
                    f"protocol.val_subjects: {n_val} validation subjects leave no training "
                    f"subject in fold {name!r} ({len(train_subj)} training subjects{note}); use "
                    f"at most {len(train_subj) - 1}"
                )
            val_subj = choose_val_subjects(
                train_subj, n_val, subject_classes, _rng(seed, name, "val")
            )
            if labels is not None:
                before = set().union(*(subject_classes[s] for s in train_subj))
                after = set().union(*(subject_classes[s] for s in train_subj if s not in val_subj))
                if before - after:
                    log.warning(
                        "fold %s: validation subjects %s take every training clip of class(es) %s",
                        name,
                        val_subj,
                        sorted(before - after),
                    )
        is_test = np.isin(subjects, list(test_set))
        is_val = np.isin(subjects, val_subj) if val_subj else np.zeros(len(subjects), bool)
        idx = np.arange(len(subjects), dtype=np.int64)
        fold = Fold(
            name=name,
            index=index,
            test_subjects=tuple(sorted(test_set)),
            train=_frozen(idx[~is_test & ~is_val & ~is_excluded]),
            val=_frozen(idx[is_val]),
            test=_frozen(idx[is_test]),
            val_subjects=tuple(val_subj),
        )
        if fold.test.size:
            folds.append(fold)

    wanted = list(getattr(protocol, "folds", None) or [])
    if wanted:
        keep = {fold_by_name(folds, w).name for w in wanted}
        folds = [f for f in folds if f.name in keep]
    return folds


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.setflags(write=False)
    return a


def fold_by_name(folds: Sequence[Fold], name: str) -> Fold:
    """The fold called `name`; "sub01" resolves to "casme2/sub01" when only one fold ends so."""
    by_name = {f.name: f for f in folds}
    if name in by_name:
        return by_name[name]
    short = [f for f in folds if f.name.rsplit("/", 1)[-1] == name]
    if len(short) == 1:
        return short[0]
    if len(short) > 1:
        raise ConfigError(
            f"fold {name!r} is ambiguous: {', '.join(f.name for f in short)}; give the full name"
        )
    names = [f.name for f in folds]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    for part in difflib.get_close_matches(name, [n.rsplit("/", 1)[-1] for n in names], n=3):
        close += [n for n in names if n.rsplit("/", 1)[-1] == part]
    close = list(dict.fromkeys(close))[:3]
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise ConfigError(f"unknown fold {name!r}{hint}; available folds: {', '.join(names)}")


# ------------------------------------------------------------------------------ dry-run tables
def subject_counts(samples: pd.DataFrame, num_classes: int | None = None) -> pd.DataFrame:
    """One row per subject (sorted): clips and, when labelled, clips per class (`n_0`, ..)."""
    subjects = _subjects(samples)
    df = pd.DataFrame({"subject": subjects})
    out = df.groupby("subject", sort=True).size().rename("clips").to_frame()
    labels = _labels_of(samples)
    if labels is not None:
        k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
        df["label"] = labels
        per = pd.crosstab(df["subject"], df["label"]).reindex(columns=range(k), fill_value=0)
        per.columns = [f"n_{c}" for c in per.columns]
        out = out.join(per)
    return out.reset_index()


def fold_table(
    folds: Iterable[Fold], samples: pd.DataFrame, num_classes: int | None = None
) -> pd.DataFrame:
    """One row per fold for dry-run printing: sizes, test class counts and classes present."""
    labels = _labels_of(samples)
    k = None
    if labels is not None:
        k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    rows = []
    for f in folds:
        row: dict[str, Any] = {
            "fold": f.name,
            "index": f.index,
            "train": int(f.train.size),
            "val": int(f.val.size),
            "test": int(f.test.size),
            "val_subjects": " ".join(f.val_subjects),
        }
        if k is not None:
            counts = np.bincount(labels[f.test].astype(np.int64), minlength=k)
            row.update({f"test_{c}": int(counts[c]) for c in range(k)})
            row["test_classes"] = int((counts > 0).sum())
            row["train_classes"] = int(
                (np.bincount(labels[f.train].astype(np.int64), minlength=k) > 0).sum()
            )
        rows.append(row)
    return pd.DataFrame(rows)
