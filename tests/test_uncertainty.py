"""mer.experiment.uncertainty: subject-bootstrap intervals, paired permutation tests, Holm.

Statistical behaviour is checked by simulation on a generating process with a known population
value (`_study`): coverage of nominal 95 % intervals, the false-positive rate of the paired test
under a zero effect, and its power under a real one. Every simulation has a fixed seed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench import bootstrap as bench_bootstrap
from mer.errors import ConfigError, DataError
from mer.experiment.resampling import (
    interval_quantiles,
    scores_from_confusions,
    seed_mean_scores,
    subject_resamples,
)
from mer.experiment.uncertainty import (
    ClipPredictions,
    bootstrap_intervals,
    compare_to_reference,
    format_p,
    holm,
    paired_comparison,
)
from mer.metrics import MetricInputError, megc_scores, scores_from_confusion

METRICS = ("uf1", "uar", "acc")


def random_variant(rng, n_clips=120, n_subjects=15, k=3, n_seeds=1, name="v", acc=0.6):
    subjects = np.array([f"s{i:02d}" for i in rng.integers(0, n_subjects, n_clips)])
    true = rng.integers(0, k, n_clips)
    right = rng.random((n_seeds, n_clips)) < acc
    pred = np.where(right, true, rng.integers(0, k, (n_seeds, n_clips)))
    return ClipPredictions.build(true, pred, subjects, k, name=name)


# ------------------------------------------------------------------------ estimates and API
@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_vectorised_scores_equal_mer_metrics_exactly(k):
    rng = np.random.default_rng(k)
    conf = rng.integers(0, 6, size=(200, k, k))
    conf[::3, :, 0] = 0  # classes never predicted
    conf[1::3, 1, :] = 0  # classes never true
    conf[:, 0, 0] += 1  # no empty matrix
    got = scores_from_confusions(conf.astype(float), k)
    flat = scores_from_confusions(conf.reshape(200, k * k).astype(float), k)
    for i in range(200):
        want = scores_from_confusion(conf[i])
        for m in METRICS:
            assert got[m][i] == want[m] and flat[m][i] == want[m]


@pytest.mark.parametrize("k", [2, 3, 7])
def test_point_estimates_equal_pooled_scores(k):
    rng = np.random.default_rng(10 + k)
    v = random_variant(rng, k=k, n_seeds=3)
    res = bootstrap_intervals(v, n_boot=200)
    per_seed = [megc_scores(v.true, v.pred[r], k) for r in range(3)]
    for m in METRICS:
        assert res.intervals[m].estimate == sum(s[m] for s in per_seed) / 3
    one = ClipPredictions.build(v.true, v.pred[0], v.subjects, k)
    assert bootstrap_intervals(one, n_boot=200).as_row()["uf1"] == per_seed[0]["uf1"]


def test_same_seed_same_intervals_other_seed_close():
    v = random_variant(np.random.default_rng(1), n_clips=300, n_subjects=40)
    a = bootstrap_intervals(v, n_boot=5000, seed=3).as_row()
    b = bootstrap_intervals(v, n_boot=5000, seed=3).as_row()
    c = bootstrap_intervals(v, n_boot=5000, seed=4).as_row()
    assert a == b
    for m in METRICS:
        assert a[f"{m}_low"] < a[m] < a[f"{m}_high"]
        assert (a[f"{m}_low"], a[f"{m}_high"]) != (c[f"{m}_low"], c[f"{m}_high"])
        assert abs(a[f"{m}_low"] - c[f"{m}_low"]) < 0.01
        assert abs(a[f"{m}_high"] - c[f"{m}_high"]) < 0.01
        assert abs(a[f"{m}_se"] - c[f"{m}_se"]) < 0.003
    assert a["n_boot"] == 5000 and a["boot_seed"] == 3 and a["ci_method"] == "expanded"


def test_resamples_draw_whole_subjects():
    counts = subject_resamples(7, 500, np.random.default_rng(0))
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    # a subject's clips move together: the pooled confusion of a resample is a count-weighted
    # sum of per-subject confusions, here checked against clip-level pooling
    v = random_variant(np.random.default_rng(2), n_subjects=7)
    names, conf = v.subject_confusions()
    reps = seed_mean_scores(counts[:20], conf, 3)
    for b in range(20):
        idx = np.concatenate(
            [
                np.flatnonzero(v.subjects == s)
                for s, n in zip(names, counts[b])
                for _ in range(int(n))
            ]
        )
        assert reps["uf1"][b] == pytest.approx(megc_scores(v.true[idx], v.pred[0][idx], 3)["uf1"])


def test_seeds_share_the_resamples_and_average():
    v = random_variant(np.random.default_rng(4), n_seeds=2)
    doubled = ClipPredictions.build(v.true, v.pred[[0, 0]], v.subjects, 3)
    single = ClipPredictions.build(v.true, v.pred[0], v.subjects, 3)
    assert bootstrap_intervals(doubled, n_boot=500).as_row() | {"n_seeds": 1} == (
        bootstrap_intervals(single, n_boot=500).as_row()
    )
    names, conf = v.subject_confusions()
    counts = subject_resamples(len(names), 50, np.random.default_rng(0))
    both = seed_mean_scores(counts, conf, 3)["uar"]
    each = [seed_mean_scores(counts, conf[[r]], 3)["uar"] for r in range(2)]
    np.testing.assert_allclose(both, (each[0] + each[1]) / 2, rtol=0, atol=1e-15)


def test_expanded_interval_is_wider_than_percentile_and_converges():
    lo_e, _ = interval_quantiles(10, 0.95, "expanded")
    assert lo_e < 0.025 and interval_quantiles(10, 0.95, "percentile") == pytest.approx(
        (0.025, 0.975)
    )
    assert interval_quantiles(5000, 0.95, "expanded")[0] == pytest.approx(0.025, abs=1e-4)


# --------------------------------------------------------------------------- simulation DGP
PI = np.array([250, 109, 83]) / 442  # composite class shares
EASY = np.array([[0.80, 0.12, 0.08], [0.15, 0.75, 0.10], [0.15, 0.10, 0.75]])
HARD = np.array([[0.50, 0.30, 0.20], [0.40, 0.40, 0.20], [0.40, 0.20, 0.40]])
BETTER = np.array([[0.85, 0.09, 0.06], [0.10, 0.82, 0.08], [0.10, 0.07, 0.83]])
MUCH_BETTER = np.array([[0.95, 0.03, 0.02], [0.05, 0.92, 0.03], [0.05, 0.03, 0.92]])


def population(easy):
    """Population uf1/uar/acc: a clip's confusion probabilities are PI_t (E[M(d)])_tc with
    M(d) = (1-d) easy + d HARD and E[d] = 1/2 (clip counts, class mix and difficulty are
    independent, so the pooled scores converge to the scores of this matrix)."""
    expected = PI[:, None] * (0.5 * easy + 0.5 * HARD)
    return {m: float(v) for m, v in scores_from_confusions(expected, 3).items()}


def _study(rng, n_subjects, other=EASY, shared=0.7):
    """Subjects with 1-12 clips, difficulty d ~ Beta(2, 2) and a class mix ~ Dirichlet(15 PI);
    two variants whose predictions use the same uniform draw for 70 % of clips (paired)."""
    n = rng.integers(1, 13, size=n_subjects)
    d, mix = rng.beta(2, 2, n_subjects), rng.dirichlet(15 * PI, n_subjects)
    subj = np.repeat(np.arange(n_subjects), n)
    true = (rng.random(subj.size)[:, None] > np.cumsum(mix[subj], 1)).sum(1).clip(0, 2)

    def predict(easy, u):
        m = (1 - d[subj, None]) * easy[true] + d[subj, None] * HARD[true]
        return (u[:, None] > np.cumsum(m, 1)).sum(1).clip(0, 2)

    u = rng.random(subj.size)
    u_other = np.where(rng.random(subj.size) < shared, u, rng.random(subj.size))
    a = ClipPredictions.build(true, predict(EASY, u), subj, 3, name="a")
    b = ClipPredictions.build(true, predict(other, u_other), subj, 3, name="b")
    return a, b


def test_coverage_of_nominal_95_intervals():
    """1,000 studies of 30-60 subjects: expanded-percentile intervals cover the population value
    93-97 % of the time (this seed: uf1 0.955, uar 0.959, acc 0.962, Δuf1 0.946; 4,000 studies:
    0.948, 0.948, 0.948, 0.940; the plain percentile interval gets 0.929-0.939 there)."""
    rng = np.random.default_rng(20261127)
    truth_a, truth_b = population(EASY), population(BETTER)
    hits = dict.fromkeys([*METRICS, "uf1 difference"], 0)
    n_studies = 1000
    for i in range(n_studies):
        a, b = _study(rng, int(rng.integers(30, 61)), other=BETTER)
        res = bootstrap_intervals(a, n_boot=1000, seed=i).intervals
        for m in METRICS:
            hits[m] += res[m].low <= truth_a[m] <= res[m].high
        d = paired_comparison(a, b, n_boot=1000, n_perm=100, seed=i).metrics["uf1"]
        hits["uf1 difference"] += d.low <= truth_b["uf1"] - truth_a["uf1"] <= d.high
    coverage = {m: h / n_studies for m, h in hits.items()}
    assert all(0.93 <= c <= 0.97 for c in coverage.values()), coverage


def test_paired_test_false_positive_rate_and_power():
    rng = np.random.default_rng(7)
    n_studies = 600
    rejected = dict.fromkeys(METRICS, 0)
    detectable = 0
    for i in range(n_studies):  # zero effect: both variants are the same procedure
        a, b = _study(rng, int(rng.integers(30, 61)))
        c = paired_comparison(a, b, n_boot=200, n_perm=200, seed=i)
        assert c.test == "Monte-Carlo permutation (200 subject swaps)"
        for m in METRICS:
            rejected[m] += c.metrics[m].p < 0.05
        detectable += c.metrics["uf1"].detectable
    rate = {m: r / n_studies for m, r in rejected.items()}
    # uf1 and uar: nominal (3,000 studies: 0.048, 0.048); acc is conservative because the
    # accuracy difference takes few distinct values (0.033)
    assert 0.03 <= rate["uf1"] <= 0.07 and 0.03 <= rate["uar"] <= 0.07, rate
    assert 0.01 <= rate["acc"] <= 0.07, rate
    assert detectable <= rejected["uf1"]
    found = 0
    for i in range(200):  # a real effect: uf1 +0.083 in the population
        a, b = _study(rng, int(rng.integers(30, 61)), other=MUCH_BETTER)
        found += paired_comparison(a, b, n_boot=1000, n_perm=200, seed=i).detectable["uf1"]
    assert found / 200 >= 0.75


# ------------------------------------------------------------------------- paired machinery
def test_exact_permutation_p_equals_brute_force():
    rng = np.random.default_rng(11)
    a = random_variant(rng, n_clips=30, n_subjects=4, name="a", acc=0.5)
    pred_b = np.where(rng.random(30) < 0.3, a.true, a.pred[0])
    b = ClipPredictions.build(a.true, pred_b, a.subjects, 3, name="b")
    c = paired_comparison(a, b, n_boot=200)
    assert c.test == "exact permutation (16 subject swaps)" and c.n_subjects == 4
    names = np.unique(a.subjects)
    observed = {m: megc_scores(a.true, pred_b, 3)[m] - megc_scores(a.true, a.pred[0], 3)[m]
                for m in METRICS}  # fmt: skip
    hits = dict.fromkeys(METRICS, 0)
    for swap in itertools.product([False, True], repeat=4):
        moved = np.isin(a.subjects, names[list(swap)])
        ref, oth = np.where(moved, pred_b, a.pred[0]), np.where(moved, a.pred[0], pred_b)
        for m in METRICS:
            t = megc_scores(a.true, oth, 3)[m] - megc_scores(a.true, ref, 3)[m]
            hits[m] += abs(t) >= abs(observed[m]) - 1e-12
    for m in METRICS:
        assert c.metrics[m].p == hits[m] / 16
        assert c.metrics[m].difference == pytest.approx(observed[m], abs=1e-15)


def test_monte_carlo_permutation_is_used_above_16_subjects():
    rng = np.random.default_rng(12)
    a = random_variant(rng, n_clips=200, n_subjects=17, name="a")
    b = ClipPredictions.build(a.true, a.pred[0], a.subjects, 3, name="b")  # identical
    c = paired_comparison(a, b, n_boot=200, n_perm=300)
    assert c.n_subjects == 17 and c.test == "Monte-Carlo permutation (300 subject swaps)"
    assert all(d.p == 1.0 and d.difference == 0.0 for d in c.metrics.values())
    assert c.mcnemar is not None and c.mcnemar.p == 1.0 and not any(c.detectable.values())


def test_holm_against_hand_computed_values():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert holm([]).size == 0
    for bad in ([0.1, np.nan], [1.5], [[0.1]]):
        with pytest.raises(ValueError, match="p-values in"):
            holm(bad)


def test_compare_to_reference_adjusts_over_variants():
    rng = np.random.default_rng(13)
    ref = random_variant(rng, n_clips=400, n_subjects=40, name="ref", acc=0.5)
    variants = {"ref": ref}
    for name, gain in (("same", 0.0), ("small", 0.1), ("large", 0.5)):
        fixed = np.where(rng.random(400) < gain, ref.true, ref.pred[0])
        variants[name] = ClipPredictions.build(ref.true, fixed, ref.subjects, 3, name=name)
    out = compare_to_reference(variants, "ref", n_boot=1000, n_perm=1000, seed=1)
    assert list(out) == ["same", "small", "large"]
    raw = [paired_comparison(ref, variants[n], n_boot=1000, n_perm=1000, seed=1) for n in out]
    for m in METRICS:
        want = holm([r.metrics[m].p for r in raw])
        assert [out[n].metrics[m].p_holm for n in out] == pytest.approx(want, abs=0)
        assert [out[n].metrics[m].low for n in out] == [r.metrics[m].low for r in raw]
    assert out["large"].detectable == {"uf1": True, "uar": True, "acc": True}
    assert out["large"].sentence().startswith("large vs ref, uf1: detectable difference: +0.")
    assert not any(out["same"].detectable.values())
    assert out["large"].as_row()["uf1_detectable"] is True
    with pytest.raises(ConfigError, match="reference variant 'nope'"):
        compare_to_reference(variants, "nope")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['n_boots'\]"):
        compare_to_reference(variants, "ref", n_boots=10)


def test_demo_situation_is_not_detectable():
    """The issue's demo: 48 clips of 6 subjects; regions_fixed differs from regions_all on 11
    clips (6 it gets right, 5 it gets wrong): a UF1 'gain' that is no detectable difference."""
    true = np.tile([0, 0, 0, 0, 1, 1, 2, 2], 6)
    subjects = np.repeat([f"sub{i}" for i in range(6)], 8)
    ref = true.copy()
    wrong = np.array([1, 4, 6, 9, 13, 15, 17, 20, 22, 27, 30, 31, 33, 38, 39, 41, 44, 47])
    ref[wrong] = (true[wrong] + 1) % 3
    other = ref.copy()
    fixed = np.array([1, 6, 9, 15, 17, 33])  # clips only the other variant gets right
    broken = np.array([0, 26, 34, 42, 43])  # clips only the reference gets right
    other[fixed] = true[fixed]
    other[broken] = (true[broken] + 1) % 3
    ids = [f"clip{i}" for i in range(48)]
    variants = {
        n: ClipPredictions.build(true, p, subjects, 3, clip_ids=ids, name=n)
        for n, p in (("regions_all", ref), ("regions_fixed", other))
    }
    c = compare_to_reference(variants, "regions_all")["regions_fixed"]
    d = c.metrics["uf1"]
    assert d.difference == pytest.approx(
        megc_scores(true, other, 3)["uf1"] - megc_scores(true, ref, 3)["uf1"], abs=1e-15
    )
    assert 0.02 < d.difference < 0.06  # reads as a gain
    assert d.low < 0 < d.high and d.p > 0.3 and not d.detectable
    assert c.mcnemar is not None
    assert (c.mcnemar.reference_only, c.mcnemar.other_only, c.mcnemar.p) == (5, 6, 1.0)
    assert c.test == "exact permutation (64 subject swaps)" and c.notes == ()
    text = c.sentence()
    assert text.startswith("regions_fixed vs regions_all, uf1: no detectable difference: +0.0")
    assert f"95 % interval [{d.low:+.3f}, {d.high:+.3f}], Holm p = {format_p(d.p_holm)}" in text


# ------------------------------------------------------------------------------ edge cases
def test_missing_clips_and_seeds_compare_on_the_common_part():
    rng = np.random.default_rng(14)
    ref = random_variant(rng, n_clips=60, n_subjects=8, n_seeds=3, name="ref")
    keep = np.arange(60) >= 10
    other = ClipPredictions.build(
        ref.true[keep], ref.pred[1:, keep], ref.subjects[keep], 3,
        clip_ids=ref.clip_ids[keep], seeds=[1, 2], name="other",
    )  # fmt: skip
    c = paired_comparison(ref, other, n_boot=200)
    assert (c.n_clips, c.n_reference_only, c.n_other_only, c.seeds) == (50, 10, 0, (1, 2))
    assert c.notes == (
        "compared on the 50 clips both predicted (reference 60, other 50)",
        "compared on the seeds both ran: [1, 2]",
    )
    assert all(d.difference == 0 and d.p == 1.0 for d in c.metrics.values())
    assert c.mcnemar is None  # two seeds compared: no single prediction per clip
    assert c.sentence().endswith("; compared on the seeds both ran: [1, 2]")
    lone = ClipPredictions.build(ref.true, ref.pred[0], ref.subjects, 3, seeds=[7], name="lone")
    with pytest.raises(DataError, match=r"lone \(seeds \[7\]\) shares no seed with reference"):
        paired_comparison(ref, lone)
    elsewhere = ClipPredictions.build([0], [0], ["x"], 3, clip_ids=["zz"], name="elsewhere")
    with pytest.raises(DataError, match="share no clip id"):
        paired_comparison(ref, elsewhere)
    relabelled = ClipPredictions.build((ref.true + 1) % 3, ref.pred, ref.subjects, 3, name="r")
    with pytest.raises(DataError, match="clip '0': true label"):
        paired_comparison(ref, relabelled)


def test_one_subject_gives_undefined_intervals_and_p_one():
    rng = np.random.default_rng(15)
    a = random_variant(rng, n_clips=20, n_subjects=1, name="a")
    res = bootstrap_intervals(a, n_boot=200)
    assert res.n_subjects == 1 and res.notes == ("1 subject: no subject-level interval",)
    iv = res.intervals["uf1"]
    assert iv.estimate == megc_scores(a.true, a.pred[0], 3)["uf1"]
    assert np.isnan(iv.low) and np.isnan(iv.high) and np.isnan(iv.se)
    assert iv.text() == f"{iv.estimate:.3f} [n/a]"
    b = ClipPredictions.build(a.true, a.true, a.subjects, 3, name="b")
    c = paired_comparison(a, b, n_boot=200)
    assert c.test == "exact permutation (2 subject swaps)" and c.metrics["uf1"].p == 1.0
    assert not c.metrics["uf1"].detectable and "interval n/a, Holm p = 1.0" in c.sentence()


@pytest.mark.parametrize("k", [2, 3])
def test_one_class_present_and_two_classes(k):
    rng = np.random.default_rng(16)
    true = np.zeros(90, dtype=int)  # only class 0 is ever true
    pred = np.where(rng.random(90) < 0.7, 0, rng.integers(0, k, 90))
    subjects = np.repeat(np.arange(9), 10)
    res = bootstrap_intervals(ClipPredictions.build(true, pred, subjects, k), n_boot=500)
    want = megc_scores(true, pred, k)
    for m in METRICS:
        iv = res.intervals[m]
        assert iv.estimate == want[m] and 0 <= iv.low <= iv.estimate <= iv.high <= 1
    assert res.intervals["uar"].estimate == pytest.approx(want["acc"] / k)


def test_bad_input_and_settings_are_named():
    with pytest.raises(MetricInputError, match=r"v, seed row 1: y_pred: label 3 at position 0"):
        ClipPredictions.build([0, 1], [[0, 1], [3, 1]], ["a", "b"], 3, name="v")
    with pytest.raises(DataError, match="v: clip id 'c' appears 2 times"):
        ClipPredictions.build([0, 1], [0, 1], ["a", "b"], 3, clip_ids=["c", "c"], name="v")
    with pytest.raises(DataError, match="v: subjects: missing value at position 1"):
        ClipPredictions.build([0, 1], [0, 1], ["a", None], 3, name="v")
    with pytest.raises(MetricInputError, match=r"expected 2 values .* got shape \(3,\)"):
        ClipPredictions.build([0, 1], [0, 1], ["a", "b", "c"], 3)
    v = random_variant(np.random.default_rng(0))
    for kwargs, msg in (
        ({"n_boot": 10}, "n_boot: expected an integer >= 100, got 10"),
        ({"level": 1.2}, r"level: expected a number in \[0.5, 1\), got 1.2"),
        ({"method": "bca"}, "method: expected one of"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
    ):
        with pytest.raises(ConfigError, match=msg):
            bootstrap_intervals(v, **kwargs)
    with pytest.raises(ConfigError, match="alpha: expected a number in"):
        paired_comparison(v, v, alpha=0)


def test_from_rows_pivots_seeds_and_checks_them():
    rng = np.random.default_rng(17)
    v = random_variant(rng, n_clips=30, n_seeds=2)
    rows = rng.permutation(60)  # long table in any order
    ids, seeds = np.tile(v.clip_ids, 2)[rows], np.repeat([5, 9], 30)[rows]
    subj, true, pred = np.tile(v.subjects, 2)[rows], np.tile(v.true, 2)[rows], v.pred.ravel()[rows]
    w = ClipPredictions.from_rows(ids, subj, true, pred, seeds, 3, name="w")
    assert w.seeds == (5, 9) and w.n_clips == 30 and w.n_seeds == 2
    order = np.argsort(v.clip_ids)
    assert (w.clip_ids == v.clip_ids[order]).all() and (w.pred == v.pred[:, order]).all()
    assert bootstrap_intervals(w, n_boot=200).as_row()["uf1"] == pytest.approx(
        bootstrap_intervals(v, n_boot=200).as_row()["uf1"], abs=1e-15
    )
    drop = ~((seeds == 9) & (ids == ids[0]))
    with pytest.raises(DataError, match=r"w: seed \d does not predict the same clips as seed 5"):
        ClipPredictions.from_rows(ids[drop], subj[drop], true[drop], pred[drop], seeds[drop], 3,
                                  name="w")  # fmt: skip
    flipped = true.copy()
    flipped[np.flatnonzero(seeds == 9)[0]] += 1
    flipped %= 3
    with pytest.raises(DataError, match="has a different true label under seed 9"):
        ClipPredictions.from_rows(ids, subj, flipped, pred, seeds, 3, name="w")
    with pytest.raises(MetricInputError, match="w: seeds must be integers"):
        ClipPredictions.from_rows(ids, subj, true, pred, np.full(60, "x"), 3, name="w")


def test_format_p():
    ps = (1.0, 0.9951, 0.34, 0.0495, 0.0123, 0.00456, 0.0004)
    want = ["1.0", "1.0", "0.34", "0.0495", "0.0123", "0.00456", "< 0.001"]
    assert [format_p(p) for p in ps] == want


def test_bench_table_smoke(capsys):
    text = bench_bootstrap.main(
        ["--variants", "3", "--seeds", "1", "2", "--n-boot", "200", "--n-perm", "200",
         "--repeats", "1"]
    )  # fmt: skip
    rows = [r for r in text.splitlines() if r.startswith("| 1 ") or r.startswith("| 2 ")]
    assert [r.split(" | ")[:6] for r in rows] == [
        ["| 1", "442", "68", "3", "200", "200"], ["| 2", "442", "68", "3", "200", "200"]
    ]  # fmt: skip
    assert all(float(x) > 0 for r in rows for x in r.strip(" |").split(" | ")[6:])
    assert capsys.readouterr().out.strip() == text


def test_take_selects_clips_and_seeds():
    v = random_variant(np.random.default_rng(18), n_clips=50, n_seeds=3)
    part = v.take(v.true == 1, seeds=[2, 0], name="class 1 only")
    assert part.name == "class 1 only" and part.seeds == (2, 0)
    assert (part.pred == v.pred[[2, 0]][:, v.true == 1]).all() and (part.true == 1).all()
    est = bootstrap_intervals(part, n_boot=200).intervals["acc"].estimate
    mask = v.true == 1
    want = [megc_scores(v.true[mask], v.pred[r][mask], 3)["acc"] for r in (2, 0)]
    assert est == sum(want) / 2
    with pytest.raises(DataError, match=r"v: no seed\(s\) \[5\] \(has \[0, 1, 2\]\)"):
        v.take(np.arange(3), seeds=[5])
    with pytest.raises(DataError, match=r"v: seed labels \[1, 1\] repeat"):
        v.take(np.arange(3), seeds=[1, 1])
    with pytest.raises(MetricInputError, match="v: no clips selected"):
        v.take(np.zeros(50, dtype=bool))
