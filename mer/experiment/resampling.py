"""Vectorised core of mer.experiment.uncertainty: pooled scores of many subject resamples at once.

Data are per-subject confusion counts ``conf`` (R seeds, S subjects, K*K). A resample (bootstrap
draw or permutation) is a row of subject weights; the pooled confusion matrix of seed r under row
i is ``weights[i] @ conf[r]``, so B resamples cost one (B, S) @ (S, R*K*K) product, and the scores
of all of them are computed together (`scores_from_confusions`, mer.metrics' definitions).
"""

from __future__ import annotations

import numpy as np

from mer.metrics import POOLED_METRICS, scores_from_confusion

METRICS = POOLED_METRICS
INTERVAL_METHODS = ("expanded", "percentile")
EXACT_MAX_SUBJECTS = 16  # 2^16 = 65,536 swaps: exact enumeration stays well under a second
_CHUNK = 8192  # resample rows scored at once (bounds memory for large K and R)
_TIE = 1e-12  # |T*| >= |T| - _TIE counts as "at least as extreme" (float noise, not a real gap)


def scores_from_confusions(conf: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """uf1 / uar / acc of many confusion matrices at once.

    `conf` is (..., K, K) or (..., K*K) counts (rows = true class); each result has shape `...`.
    Same definitions and zero-division rules as mer.metrics.scores_from_confusion.
    """
    k = int(num_classes)
    c = np.asarray(conf, dtype=np.float64)
    if c.shape[-2:] != (k, k):
        c = c.reshape(*c.shape[:-1], k, k)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    support, predicted = c.sum(axis=-1), c.sum(axis=-2)
    f1_den = support + predicted  # = 2TP + FP + FN, exactly (integer-valued floats)
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(support), where=f1_den > 0)
    recall = np.divide(tp, support, out=np.zeros_like(support), where=support > 0)
    acc = tp.sum(axis=-1) / support.sum(axis=-1)
    return {"uf1": f1.mean(axis=-1), "uar": recall.mean(axis=-1), "acc": acc}


def point_scores(conf: np.ndarray) -> dict[str, float]:
    """Seed-mean pooled scores of the data itself (R, S, K*K), computed by mer.metrics."""
    k = int(round(np.sqrt(conf.shape[-1])))
    per_seed = [scores_from_confusion(c.sum(0).reshape(k, k).astype(np.int64)) for c in conf]
    return {m: float(sum(s[m] for s in per_seed) / len(per_seed)) for m in METRICS}


def subject_resamples(n_subjects: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_subjects) float64 counts: how often each subject is drawn in each resample
    (n_subjects draws with replacement)."""
    idx = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    idx += np.arange(n_boot)[:, None] * n_subjects
    return np.bincount(idx.ravel(), minlength=n_boot * n_subjects).reshape(n_boot, -1) * 1.0


def seed_mean_scores(
    weights: np.ndarray, conf: np.ndarray, num_classes: int
) -> dict[str, np.ndarray]:
    """Seed-mean pooled scores (P,) for subject `weights` (P, S) and confusions (R, S, K*K)."""
    r, s, kk = conf.shape
    flat = conf.transpose(1, 0, 2).reshape(s, r * kk)
    out = {m: np.empty(weights.shape[0]) for m in METRICS}
    for lo in range(0, weights.shape[0], _CHUNK):
        part = _seed_mean(weights[lo : lo + _CHUNK] @ flat, r, num_classes)
        for m in METRICS:
            out[m][lo : lo + _CHUNK] = part[m]
    return out


def _seed_mean(pooled: np.ndarray, n_seeds: int, num_classes: int) -> dict[str, np.ndarray]:
    """Seed-mean scores of pooled confusions (P, R*K*K)."""
    scores = scores_from_confusions(pooled.reshape(pooled.shape[0], n_seeds, -1), num_classes)
    return {m: v.mean(axis=-1) for m, v in scores.items()}


def interval_quantiles(n_subjects: int, level: float, method: str) -> tuple[float, float]:
    """Quantile levels of the bootstrap distribution that bound the interval.

    percentile: (1 - level) / 2 and its complement. expanded (Hesterberg 2015, "What teachers
    should know about the bootstrap", Am. Stat. 69(4)): the percentile interval taken at
    Φ(±sqrt(S / (S-1)) t_{S-1, (1+level)/2}), which undoes the bootstrap's (S-1)/S variance
    shrinkage and uses t instead of z for S subjects; it tends to the percentile interval as S
    grows.
    """
    tail = (1 - level) / 2
    if method == "percentile":
        return tail, 1 - tail
    if method != "expanded":
        raise ValueError(f"interval method {method!r} not in {INTERVAL_METHODS}")
    from scipy import stats  # lazy: ~0.5 s; trials import this module and never call this

    z = np.sqrt(n_subjects / (n_subjects - 1)) * stats.t.ppf(1 - tail, n_subjects - 1)
    lo = float(stats.norm.cdf(-z))
    return lo, 1 - lo


def interval(reps: np.ndarray, n_subjects: int, level: float, method: str) -> tuple[float, float]:
    """(low, high) from bootstrap replicates; NaN with fewer than 2 subjects."""
    if n_subjects < 2:
        return np.nan, np.nan
    lo, hi = np.quantile(reps, interval_quantiles(n_subjects, level, method))
    return float(lo), float(hi)


def flip_matrix(n_subjects: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Rows of subject swaps (1 = swap): all 2^S when S <= EXACT_MAX_SUBJECTS (exact=True), else
    `n_perm` random rows."""
    if n_subjects <= EXACT_MAX_SUBJECTS:
        rows = (np.arange(2**n_subjects)[:, None] >> np.arange(n_subjects)) & 1
        return rows.astype(np.float64), True
    return rng.integers(0, 2, size=(n_perm, n_subjects)).astype(np.float64), False


def permutation_pvalues(
    c_ref: np.ndarray, c_oth: np.ndarray, num_classes: int, flips: np.ndarray, exact: bool
) -> dict[str, float]:
    """Two-sided paired permutation p-values of other − reference (seed-mean pooled metric).

    A swap row f gives reference' = Σ_s (1-f_s) ref_s + f_s oth_s and other' the complement: the
    two variants' predictions of whole subjects (all seeds) are exchanged. Exact: the share of
    the 2^S swaps whose |difference| is at least the observed one (the identity is one of them);
    Monte-Carlo: (1 + hits) / (1 + rows), which keeps the test valid.
    """
    r, s, kk = c_ref.shape
    diff = (c_oth - c_ref).transpose(1, 0, 2).reshape(s, r * kk)  # (S, R*K*K)
    tot_ref, tot_oth = c_ref.sum(axis=1).ravel(), c_oth.sum(axis=1).ravel()
    t_diff = {m: np.empty(flips.shape[0]) for m in METRICS}
    for lo in range(0, flips.shape[0], _CHUNK):
        moved = flips[lo : lo + _CHUNK] @ diff  # ref' = ref + moved, other' = other - moved
        a = _seed_mean(tot_ref + moved, r, num_classes)
        b = _seed_mean(tot_oth - moved, r, num_classes)
        for m in METRICS:
            t_diff[m][lo : lo + _CHUNK] = b[m] - a[m]
    obs_ref, obs_oth = point_scores(c_ref), point_scores(c_oth)
    out = {}
    for m in METRICS:
        observed = abs(obs_oth[m] - obs_ref[m])
        hits = int(np.sum(np.abs(t_diff[m]) >= observed - _TIE))
        out[m] = hits / flips.shape[0] if exact else (1 + hits) / (1 + flips.shape[0])
    return out


def mcnemar_exact(
    reference_correct: np.ndarray, other_correct: np.ndarray
) -> tuple[int, int, float]:
    """(reference-only correct, other-only correct, exact two-sided McNemar p) over clips."""
    b = int(np.sum(reference_correct & ~other_correct))
    c = int(np.sum(~reference_correct & other_correct))
    from scipy import stats  # lazy: ~0.5 s; trials import this module and never call this

    p = 1.0 if b + c == 0 else float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    return b, c, p


def holm(pvalues: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
    """Holm step-down adjusted p-values, in the order given (family-wise error control)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"holm: expected a 1-D sequence of p-values in [0, 1], got {pvalues!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out
