"""One variant's test predictions as the uncertainty module needs them: R seeds × N clips, with
each clip's id, subject and label, checked once (mer.metrics' label checks, unique clip ids, the
same clips under every seed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mer.errors import DataError
from mer.metrics import MetricInputError, confusion_matrix


@dataclass(frozen=True, eq=False)
class ClipPredictions:
    """One variant's test predictions: R seeds × N clips, with each clip's subject and label.

    Build with `build` (arrays) or `from_rows` (a long table, one row per clip and seed).
    """

    name: str
    clip_ids: np.ndarray  # (N,) str, unique
    subjects: np.ndarray  # (N,) str
    true: np.ndarray  # (N,) int64
    pred: np.ndarray  # (R, N) int64
    num_classes: int
    seeds: tuple[int, ...]  # R seed labels; paired comparisons pair equal labels

    @classmethod
    def build(
        cls,
        true: Any,
        pred: Any,
        subjects: Any,
        num_classes: int,
        *,
        clip_ids: Any = None,
        seeds: Sequence[int] | None = None,
        name: str = "predictions",
    ) -> ClipPredictions:
        """`pred` is (N,) for one seed or (R, N) for R seeds on the same clips (axis 0 = seed).

        `clip_ids` default to positions (pair two variants by position); `seeds` to 0..R-1.
        """
        p = np.asarray(pred)
        if p.ndim == 1:
            p = p[None, :]
        if p.ndim != 2 or p.shape[0] == 0:
            raise MetricInputError(
                f"{name}: pred must be (clips,) or (seeds, clips), got {p.shape}"
            )
        t = np.asarray(true)
        for r in range(p.shape[0]):
            try:  # mer.metrics' checks: integer labels in range, equal lengths, not empty
                confusion_matrix(t, p[r], num_classes)
            except MetricInputError as err:
                raise MetricInputError(f"{name}, seed row {r}: {err}") from None
        n = p.shape[1]
        subj = _ids(subjects, n, f"{name}: subjects")
        ids = (
            np.arange(n).astype(str) if clip_ids is None else _ids(clip_ids, n, f"{name}: clip_ids")
        )
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DataError(
                f"{name}: clip id {str(uniq[counts > 1][0])!r} appears {counts.max()} times; "
                "one prediction per clip and seed"
            )
        seed_labels = tuple(range(p.shape[0])) if seeds is None else tuple(int(s) for s in seeds)
        if len(seed_labels) != p.shape[0] or len(set(seed_labels)) != len(seed_labels):
            raise DataError(f"{name}: seeds {seed_labels} must be {p.shape[0]} distinct labels")
        return cls(
            name,
            ids,
            subj,
            t.astype(np.int64),
            p.astype(np.int64),
            int(num_classes),
            seed_labels,
        )

    @classmethod
    def from_rows(
        cls,
        clip_ids: Any,
        subjects: Any,
        true: Any,
        pred: Any,
        seeds: Any,
        num_classes: int,
        *,
        name: str = "predictions",
    ) -> ClipPredictions:
        """From a long table (e.g. mer.predlog test rows of one variant: sample_id, subject,
        true, pred, seed). Every seed must cover the same clips with the same subject and label.
        """
        ids = _ids(clip_ids, None, f"{name}: clip ids")
        n = len(ids)
        subj, seed_col = _ids(subjects, n, f"{name}: subjects"), np.asarray(seeds)
        t, p = np.asarray(true), np.asarray(pred)
        if seed_col.shape != (n,) or t.shape != (n,) or p.shape != (n,):
            raise MetricInputError(
                f"{name}: clip ids, subjects, true, pred, seeds differ in length"
            )
        try:
            seed_ints = seed_col.astype(np.int64)
        except (TypeError, ValueError):
            raise MetricInputError(f"{name}: seeds must be integers") from None
        seed_labels = sorted(set(seed_ints.tolist()))
        if not seed_labels:
            raise MetricInputError(f"{name}: no prediction rows")
        first = None
        rows = []
        for s in seed_labels:
            idx = np.flatnonzero(seed_ints == s)
            idx = idx[np.argsort(ids[idx], kind="stable")]
            if first is None:
                first = idx
            elif len(idx) != len(first) or (ids[idx] != ids[first]).any():
                have, want = set(ids[idx].tolist()), set(ids[first].tolist())
                gap = sorted(want - have) or sorted(have - want)
                raise DataError(
                    f"{name}: seed {s} does not predict the same clips as seed {seed_labels[0]} "
                    f"({len(want - have)} missing, {len(have - want)} extra, e.g. {gap[0]!r}); "
                    "pass the seeds that finished every fold"
                )
            for col, what in ((subj, "subject"), (t, "true label")):
                bad = np.flatnonzero(col[idx] != col[first])
                if bad.size:
                    raise DataError(
                        f"{name}: clip {str(ids[first][bad[0]])!r} has a different {what} "
                        f"under seed {s}"
                    )
            rows.append(p[idx])
        return cls.build(
            t[first], np.stack(rows), subj[first], num_classes, clip_ids=ids[first],
            seeds=seed_labels, name=name,
        )  # fmt: skip

    @property
    def n_clips(self) -> int:
        return int(self.pred.shape[1])

    @property
    def n_seeds(self) -> int:
        return int(self.pred.shape[0])

    @property
    def n_subjects(self) -> int:
        return int(np.unique(self.subjects).size)

    def take(
        self, clips: Any, seeds: Sequence[int] | None = None, name: str | None = None
    ) -> ClipPredictions:
        """These predictions restricted to `clips` (positions or a boolean mask, e.g. one
        dataset of the composite) and to the seed labels `seeds` (default: all), in that order."""
        idx = np.arange(self.n_clips)[np.asarray(clips)]
        if idx.size == 0:
            raise MetricInputError(f"{self.name}: no clips selected")
        keep = self.seeds if seeds is None else tuple(int(s) for s in seeds)
        if len(set(keep)) != len(keep):
            raise DataError(f"{self.name}: seed labels {list(keep)} repeat")
        missing = [s for s in keep if s not in self.seeds]
        if missing:
            raise DataError(f"{self.name}: no seed(s) {missing} (has {list(self.seeds)})")
        rows = [self.seeds.index(s) for s in keep]
        return replace(
            self, name=self.name if name is None else name, clip_ids=self.clip_ids[idx],
            subjects=self.subjects[idx], true=self.true[idx], pred=self.pred[np.ix_(rows, idx)],
            seeds=keep,
        )  # fmt: skip

    def subject_confusions(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted subject names (S,) and per-seed, per-subject confusion counts (R, S, K*K)."""
        names, inv = np.unique(self.subjects, return_inverse=True)
        r, s, k = self.n_seeds, names.size, self.num_classes
        code = ((np.arange(r)[:, None] * s + inv[None, :]) * k + self.true[None, :]) * k + self.pred
        conf = np.bincount(code.ravel(), minlength=r * s * k * k).reshape(r, s, k * k)
        return names, conf.astype(np.float64)


def _ids(values: Any, n: int | None, what: str) -> np.ndarray:
    """Identifiers as a 1-D str array of length `n`; None/NaN is an error, not a group."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise MetricInputError(
            f"{what}: expected {n} values in one dimension, got shape {arr.shape}"
        )
    for i, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise DataError(f"{what}: missing value at position {i}")
    return arr.astype(str)
