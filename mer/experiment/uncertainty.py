"""Uncertainty of pooled MEGC scores: subject-bootstrap intervals and paired variant tests.

A pooled UF1 from a few hundred clips of a few dozen people moves by ±0.1 when other people are
drawn, so every headline number gets an interval and every "gain" a test.

Unit: the subject. A resample draws the S subjects with replacement and keeps every clip of each
drawn subject (LOSO's unit: one person's clips share a face and a fold model, so they are not
independent; subjects are). Computation: mer.experiment.resampling (one matrix product for all
resamples; the scores use mer.metrics' definitions; estimates are mer.metrics' own numbers).

Seeds: a variant trained with R seeds has R predictions per clip. The statistic is the mean over
seeds of the pooled metric (today's "mean over seeds"), and each resample applies the same
subject counts to every seed. Seeds need no resampling of their own: under LOSO each subject is
predicted by its own fold's model, so training noise is independent across subjects and the
subject resample already carries it.

Interval: "expanded" percentile bootstrap by default (Hesterberg 2015; quantile levels widened by
sqrt(S/(S-1)) t_{S-1} instead of z, see resampling.interval_quantiles); "percentile" on request.
SE = standard deviation of the resampled statistic. Fewer than 2 subjects: interval and SE NaN.
Coverage of nominal 95 % intervals, measured with tests/test_uncertainty.py's generating process
(30-60 subjects of 1-12 clips, per-subject difficulty and class mix, 3 unbalanced classes, known
population value; Δ = paired difference with a known effect), 4,000 simulated studies, 1,000
resamples each (Monte-Carlo SE ±0.004):

    ==========  =====  =====  =====  =====  =====  =====
    method      uf1    uar    acc    Δuf1   Δuar   Δacc
    ==========  =====  =====  =====  =====  =====  =====
    expanded    0.948  0.948  0.948  0.940  0.940  0.948
    percentile  0.939  0.938  0.938  0.929  0.931  0.936
    ==========  =====  =====  =====  =====  =====  =====

(an independent run of 4,000: expanded 0.946 0.949 0.948 0.950 0.952 0.941). With 10-20
subjects (one dataset alone): expanded 0.930-0.944, percentile 0.902-0.910. Pooled UF1 is
slightly biased low in small samples (-0.002 at 30-60 subjects, against an SE near 0.03). With a
handful of subjects no bootstrap interval is reliable; it is still given, with n_subjects.

Paired comparison (other − reference) on the clips and seeds both variants predicted (the result
says when that is fewer than either has): the same subject resamples for both give the interval
of the difference. Test: paired permutation test that swaps the two variants' predictions of
whole subjects (all seeds together), statistic = difference of the seed-mean pooled metric,
two-sided; exact over all 2^S swaps when S <= 16, Monte-Carlo otherwise. Its null ("the variants
are the same procedure", exchangeable within each subject) makes it valid at any sample size.
Measured false-positive rate at alpha 0.05 with a zero effect (same generating process): 30-60
subjects, 3,000 studies: uf1 0.048, uar 0.048, acc 0.033; 8-14 subjects (exact), 1,000 studies:
0.029, 0.021, 0.014 (conservative: swapping a subject on which both variants agree changes
nothing, so the permutation distribution has ties; acc's difference takes few values).
Power at 30-60 subjects: a population UF1 gain of +0.083 is detectable in 85 % of studies, one of
+0.032 in 23 % (500 / 1,000 studies).
McNemar's exact test on pooled clip correctness is a secondary figure, given when one seed is
compared (it treats clips as independent, which subjects make optimistic).

Detectable: the difference's interval excludes 0 (low > 0 or high < 0) AND its Holm-adjusted
permutation p-value is < alpha. Holm runs over the variants compared with one reference,
separately per metric (UF1 is the headline; UF1/UAR/acc are views of one set of predictions). The
interval itself is not adjusted for multiplicity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from mer.errors import ConfigError, DataError
from mer.experiment.clip_predictions import ClipPredictions
from mer.experiment.resampling import (
    INTERVAL_METHODS,
    METRICS,
    flip_matrix,
    holm,
    interval,
    mcnemar_exact,
    permutation_pvalues,
    point_scores,
    seed_mean_scores,
    subject_resamples,
)

__all__ = [
    "ClipPredictions",
    "Comparison",
    "Interval",
    "McNemar",
    "MetricDifference",
    "VariantIntervals",
    "bootstrap_intervals",
    "clear_resample_cache",
    "compare_to_reference",
    "format_p",
    "holm",
    "paired_comparison",
]

DEFAULT_N_BOOT = 10_000
DEFAULT_N_PERM = 10_000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
DEFAULT_ALPHA = 0.05
DEFAULT_METHOD = "expanded"
_BOOT_STREAM, _PERM_STREAM = 0, 1  # independent random streams from one configured seed


# ----------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Interval:
    """One metric's estimate with its bootstrap interval and standard error (NaN: undefined)."""

    metric: str
    estimate: float
    low: float
    high: float
    se: float
    level: float

    def text(self, digits: int = 3) -> str:
        """e.g. ``0.694 [0.390, 0.890]``; ``0.694 [n/a]`` when undefined."""
        if np.isnan(self.low):
            return f"{self.estimate:.{digits}f} [n/a]"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class VariantIntervals:
    """Bootstrap intervals of one variant's seed-mean pooled uf1 / uar / acc."""

    name: str
    intervals: dict[str, Interval]
    n_clips: int
    n_subjects: int
    n_seeds: int
    n_boot: int
    seed: int
    level: float
    method: str
    notes: tuple[str, ...] = ()

    def as_row(self) -> dict[str, Any]:
        """Flat keys for tables and W&B: uf1, uf1_low, uf1_high, uf1_se, ..., and the settings."""
        row: dict[str, Any] = {}
        for m, iv in self.intervals.items():
            row.update({m: iv.estimate, f"{m}_low": iv.low, f"{m}_high": iv.high, f"{m}_se": iv.se})
        row.update(ci_level=self.level, ci_method=self.method, n_boot=self.n_boot)
        row.update(boot_seed=self.seed, n_subjects=self.n_subjects, n_seeds=self.n_seeds)
        return row


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on pooled clip correctness (one compared seed)."""

    reference_only: int  # clips the reference got right and the other variant wrong
    other_only: int  # clips the other variant got right and the reference wrong
    p: float


@dataclass(frozen=True)
class MetricDifference:
    """other − reference for one metric: paired interval, permutation p, Holm-adjusted p."""

    metric: str
    reference: float  # seed-mean pooled score on the compared clips and seeds
    other: float
    difference: float
    low: float
    high: float
    se: float
    level: float
    p: float
    p_holm: float
    alpha: float

    @property
    def detectable(self) -> bool:
        """Interval excludes 0 and the Holm-adjusted permutation p-value is below alpha."""
        return bool((self.low > 0 or self.high < 0) and self.p_holm < self.alpha)

    def sentence(self) -> str:
        """A report line, e.g.
        ``no detectable difference: +0.033, 95 % interval [-0.110, +0.190], Holm p = 1.0``.
        """
        head = "detectable difference" if self.detectable else "no detectable difference"
        pct = f"{100 * self.level:g} %"
        ci = (
            "interval n/a"
            if np.isnan(self.low)
            else f"interval [{self.low:+.3f}, {self.high:+.3f}]"
        )
        p = format_p(self.p_holm)
        return (
            f"{head}: {self.difference:+.3f}, {pct} {ci}, Holm p {'' if p[0] == '<' else '= '}{p}"
        )


@dataclass(frozen=True)
class Comparison:
    """One variant against the reference, on the clips and seeds both predicted."""

    reference: str
    other: str
    metrics: dict[str, MetricDifference]
    n_clips: int  # compared clips (both variants predicted them)
    n_reference_only: int  # clips only the reference predicted (left out of the comparison)
    n_other_only: int
    n_subjects: int
    seeds: tuple[int, ...]  # compared seed labels
    test: str  # which permutation test ran (exact / Monte-Carlo, how many swaps)
    mcnemar: McNemar | None  # None when several seeds are compared
    n_boot: int
    seed: int
    notes: tuple[str, ...] = ()

    @property
    def detectable(self) -> dict[str, bool]:
        return {m: d.detectable for m, d in self.metrics.items()}

    def sentence(self, metric: str = "uf1") -> str:
        """One report line: which variants, the verdict, and any restriction of the data."""
        text = f"{self.other} vs {self.reference}, {metric}: {self.metrics[metric].sentence()}"
        return "; ".join([text, *self.notes])

    def as_row(self) -> dict[str, Any]:
        """Flat keys: uf1_diff, uf1_diff_low, uf1_diff_high, uf1_diff_se, uf1_p, uf1_p_holm,
        uf1_detectable, ... and mcnemar_* when McNemar ran."""
        row: dict[str, Any] = {"reference": self.reference, "n_compared": self.n_clips}
        for m, d in self.metrics.items():
            row.update({f"{m}_diff": d.difference, f"{m}_diff_low": d.low})
            row.update({f"{m}_diff_high": d.high, f"{m}_diff_se": d.se, f"{m}_p": d.p})
            row.update({f"{m}_p_holm": d.p_holm, f"{m}_detectable": d.detectable})
        if self.mcnemar is not None:
            row.update(mcnemar_ref_only=self.mcnemar.reference_only)
            row.update(mcnemar_other_only=self.mcnemar.other_only, mcnemar_p=self.mcnemar.p)
        return row


def format_p(p: float) -> str:
    """A p-value as a report prints it: 1.0 (from 0.995), 0.34, then three significant digits
    under 0.1 so that a value just under alpha never prints as alpha (0.0495), < 0.001."""
    if p >= 0.995:
        return "1.0"
    if p >= 0.1:
        return f"{p:.2f}"
    return f"{p:.3g}" if p >= 0.001 else "< 0.001"


# -------------------------------------------------------------------------------------- API
def bootstrap_intervals(
    data: ClipPredictions,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    method: str = DEFAULT_METHOD,
) -> VariantIntervals:
    """Subject-bootstrap intervals of one variant's seed-mean pooled uf1 / uar / acc.

    Estimates are mer.metrics' pooled scores (averaged over seeds). The resamples depend only on
    (seed, number of subjects, n_boot): the same seed gives the same intervals, and variants
    with the same subjects share their resamples.
    """
    _check(n_boot=n_boot, level=level, method=method, seed=seed)
    _, conf = data.subject_confusions()
    s = conf.shape[1]
    point = point_scores(conf)
    reps = _bootstrap(conf, data.num_classes, n_boot, seed)
    intervals = {
        m: Interval(m, point[m], *interval(reps[m], s, level, method), _se(reps[m], s), level)
        for m in METRICS
    }
    notes = ("1 subject: no subject-level interval",) if s < 2 else ()
    return VariantIntervals(
        data.name, intervals, data.n_clips, s, data.n_seeds, n_boot, seed, level, method, notes
    )


def paired_comparison(
    reference: ClipPredictions,
    other: ClipPredictions,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_PERM,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    alpha: float = DEFAULT_ALPHA,
    method: str = DEFAULT_METHOD,
) -> Comparison:
    """other − reference on their common clips and seeds (see the module docstring).

    `p_holm` equals `p` here (a family of one); compare_to_reference adjusts over variants.
    """
    _check(n_boot=n_boot, level=level, method=method, n_perm=n_perm, alpha=alpha, seed=seed)
    return _paired(reference, other, n_boot, n_perm, seed, level, alpha, method, {})


def _paired(
    reference: ClipPredictions,
    other: ClipPredictions,
    n_boot: int,
    n_perm: int,
    seed: int,
    level: float,
    alpha: float,
    method: str,
    reference_reps: dict[str, dict[str, np.ndarray]],
) -> Comparison:
    """paired_comparison; `reference_reps` keeps the reference's bootstrap replicates for the
    next variant compared on all of its clips and seeds (they are the same)."""
    ref, oth, notes = _align(reference, other)
    k = ref.num_classes
    _, c_ref = ref.subject_confusions()
    _, c_oth = oth.subject_confusions()
    s = c_ref.shape[1]
    if s < 2:
        notes.append("1 subject: no subject-level interval")
    p_ref, p_oth = point_scores(c_ref), point_scores(c_oth)
    whole = ref.n_clips == reference.n_clips and ref.seeds == reference.seeds
    b_ref = reference_reps.get("whole") if whole else None
    if b_ref is None:
        b_ref = _bootstrap(c_ref, k, n_boot, seed)
        if whole:
            reference_reps["whole"] = b_ref
    b_oth = _bootstrap(c_oth, k, n_boot, seed)
    flips, exact = _flips(seed, s, n_perm)
    pvals = permutation_pvalues(c_ref, c_oth, k, flips, exact)
    test = f"{'exact' if exact else 'Monte-Carlo'} permutation ({len(flips)} subject swaps)"
    diffs = {}
    for m in METRICS:
        reps = b_oth[m] - b_ref[m]
        lo, hi = interval(reps, s, level, method)
        diffs[m] = MetricDifference(
            m, p_ref[m], p_oth[m], p_oth[m] - p_ref[m], lo, hi, _se(reps, s), level,
            pvals[m], pvals[m], alpha,
        )  # fmt: skip
    mcnemar = None
    if len(ref.seeds) == 1:
        mcnemar = McNemar(*mcnemar_exact(ref.pred[0] == ref.true, oth.pred[0] == oth.true))
    return Comparison(
        reference.name, other.name, diffs, ref.n_clips, reference.n_clips - ref.n_clips,
        other.n_clips - ref.n_clips, s, ref.seeds, test, mcnemar, n_boot, seed, tuple(notes),
    )  # fmt: skip


def compare_to_reference(
    variants: Mapping[str, ClipPredictions], reference: str, **settings: Any
) -> dict[str, Comparison]:
    """Every other variant against `variants[reference]`, p-values Holm-adjusted over them
    (per metric). `settings`: paired_comparison's keywords (n_boot, n_perm, seed, level, ...)."""
    if reference not in variants:
        raise ConfigError(f"reference variant {reference!r} is not one of {sorted(variants)}")
    opts = {"n_boot": DEFAULT_N_BOOT, "n_perm": DEFAULT_N_PERM, "seed": DEFAULT_SEED}
    opts.update(level=DEFAULT_LEVEL, alpha=DEFAULT_ALPHA, method=DEFAULT_METHOD)
    unknown = sorted(set(settings) - set(opts))
    if unknown:
        raise ConfigError(f"uncertainty: unknown setting(s) {unknown} (known: {sorted(opts)})")
    opts.update(settings)
    _check(**opts)
    ref, cache = variants[reference], {}
    raw = {
        name: _paired(ref, v, **opts, reference_reps=cache)
        for name, v in variants.items()
        if name != reference
    }
    adjusted = {m: holm([c.metrics[m].p for c in raw.values()]) for m in METRICS} if raw else {}
    out = {}
    for i, (name, c) in enumerate(raw.items()):
        metrics = {m: replace(d, p_holm=float(adjusted[m][i])) for m, d in c.metrics.items()}
        out[name] = replace(c, metrics=metrics)
    return out


# ---------------------------------------------------------------------------------- helpers
def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


@lru_cache(maxsize=4)
def _resamples(seed: int, n_subjects: int, n_boot: int) -> np.ndarray:
    """Bootstrap subject counts, shared by every variant with as many subjects (read-only)."""
    counts = subject_resamples(n_subjects, n_boot, _rng(seed, _BOOT_STREAM))
    counts.flags.writeable = False
    return counts


@lru_cache(maxsize=4)
def _flips(seed: int, n_subjects: int, n_perm: int) -> tuple[np.ndarray, bool]:
    """Permutation swap rows (read-only) and whether they are the exact enumeration."""
    flips, exact = flip_matrix(n_subjects, n_perm, _rng(seed, _PERM_STREAM))
    flips.flags.writeable = False
    return flips, exact


def clear_resample_cache() -> None:
    """Forget the cached resamples and swaps (they are kept for the next variant; memory)."""
    _resamples.cache_clear()
    _flips.cache_clear()


def _bootstrap(conf: np.ndarray, k: int, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Seed-mean pooled scores of n_boot subject resamples (NaN with fewer than 2 subjects)."""
    s = conf.shape[1]
    if s < 2:
        return {m: np.full(n_boot, np.nan) for m in METRICS}
    return seed_mean_scores(_resamples(seed, s, n_boot), conf, k)


def _se(reps: np.ndarray, n_subjects: int) -> float:
    return float(np.std(reps, ddof=1)) if n_subjects >= 2 else np.nan


def _count(value: Any, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"uncertainty {what}: expected an integer >= {minimum}, got {value!r}")


def _check(
    *,
    n_boot: int,
    level: float,
    method: str,
    n_perm: int = DEFAULT_N_PERM,
    alpha: float = DEFAULT_ALPHA,
    seed: int = DEFAULT_SEED,
) -> None:
    """Settings come from the sweep config: a ConfigError names the bad one."""
    _count(seed, "seed", 0)
    _count(n_boot, "n_boot", 100)
    _count(n_perm, "n_perm", 100)
    if not isinstance(level, float | int) or not 0.5 <= level < 1:
        raise ConfigError(f"uncertainty level: expected a number in [0.5, 1), got {level!r}")
    if not isinstance(alpha, float | int) or not 0 < alpha < 1:
        raise ConfigError(f"uncertainty alpha: expected a number in (0, 1), got {alpha!r}")
    if method not in INTERVAL_METHODS:
        raise ConfigError(f"uncertainty method: expected one of {INTERVAL_METHODS}, got {method!r}")


def _align(
    reference: ClipPredictions, other: ClipPredictions
) -> tuple[ClipPredictions, ClipPredictions, list[str]]:
    """Both restricted to the clips and seeds they share, in the reference's order."""
    if reference.num_classes != other.num_classes:
        raise DataError(
            f"{other.name} has {other.num_classes} classes, reference {reference.name} "
            f"{reference.num_classes}: compare variants of one label scheme"
        )
    seeds = tuple(s for s in reference.seeds if s in other.seeds)
    if not seeds:
        raise DataError(
            f"{other.name} (seeds {list(other.seeds)}) shares no seed with reference "
            f"{reference.name} (seeds {list(reference.seeds)})"
        )
    pos = {c: i for i, c in enumerate(other.clip_ids.tolist())}
    ri = np.array([i for i, c in enumerate(reference.clip_ids.tolist()) if c in pos], np.int64)
    if ri.size == 0:
        raise DataError(f"{other.name} and reference {reference.name} share no clip id")
    oi = np.array([pos[c] for c in reference.clip_ids[ri].tolist()], dtype=np.int64)
    for attr, what in (("subjects", "subject"), ("true", "true label")):
        a, b = getattr(reference, attr)[ri], getattr(other, attr)[oi]
        bad = np.flatnonzero(a != b)
        if bad.size:
            raise DataError(
                f"clip {str(reference.clip_ids[ri[bad[0]]])!r}: {what} {a[bad[0]].item()!r} in "
                f"reference {reference.name} but {b[bad[0]].item()!r} in {other.name}"
            )
    notes = []
    if ri.size < max(reference.n_clips, other.n_clips):
        notes.append(
            f"compared on the {ri.size} clips both predicted (reference {reference.n_clips}, "
            f"{other.name} {other.n_clips})"
        )
    if len(seeds) < max(reference.n_seeds, other.n_seeds):
        notes.append(f"compared on the seeds both ran: {list(seeds)}")

    return reference.take(ri, seeds), other.take(oi, seeds), notes
