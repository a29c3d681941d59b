"""FoldFanoutSearcher logic, driven directly (no Ray cluster): fan-out, pooled objective, pruning,
failures, checkpoint/restore and summaries. Fold "training" is a fake, deterministic function of
the configuration id and fold, which is all the searcher may see (it tests the searcher, not
training); the Ray end-to-end runs are in test_sweep_search_tune.py.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from mer.config import from_dict, with_overrides
from mer.errors import ConfigError
from mer.metrics import megc_scores
from mer.sweep.search import (
    NO_HOLDOUT_NOTE,
    FoldFanoutSearcher,
    cancel_requested,
    format_search_summary,
    open_storage,
    search_label,
    search_trial_config,
    val_labels,
    write_search_summary,
)

FOLDS = [f"kfold{i}" for i in range(4)]
VAL_TRUE = [0, 1, 2, 0, 1, 2]
TEST_TRUE = [2, 2, 1, 0]


def make_cfg(tmp_path, ablations=None, **search):
    spec = {
        "trials": 4,
        "concurrent_configs": 2,
        "space": {
            "train.lr": {"loguniform": [1.0e-4, 1.0e-2]},
            "model.recurrent": {"choice": ["gru", "lstm"]},
            "model.recurrent_units": {"int": [256, 512], "when": {"model.recurrent": ["gru"]}},
        },
    }
    spec.update(search)
    raw = {
        "name": "unit",
        "output": str(tmp_path),
        "data": {"dataset": "synthetic"},
        "protocol": {"split": "group_kfold:4", "val_subjects": 1},
        "search": spec,
    }
    if ablations:
        raw["ablations"] = ablations
    return from_dict(raw)


def n_correct(trial_config) -> int:
    """Fake fold quality: how many of the 6 val clips a configuration gets right on a fold."""
    return (
        3 * trial_config["config_id"] + trial_config["fold_index"] + len(trial_config["variant"])
    ) % 7


def fake_result(trial_config, *, test_shift=0, as_table=False):
    k = n_correct(trial_config)
    val_pred = [t if i < k else (t + 1) % 3 for i, t in enumerate(VAL_TRUE)]
    test_true = [(t + test_shift) % 3 for t in TEST_TRUE]
    test_pred = [0, 2, 1, 0]
    result = {"test_uf1": megc_scores(test_true, test_pred, 3)["uf1"], "mer_final": True}
    if as_table:
        table = {
            "split": ["test"] * 4 + ["val"] * 6,
            "true": test_true + VAL_TRUE,
            "pred": test_pred + val_pred,
        }
        if as_table == "flat":  # how Tune hands a nested result to a searcher
            result.update({f"predictions/{k}": v for k, v in table.items()})
        else:
            result["predictions"] = table
    else:
        result.update(val_true=list(VAL_TRUE), val_pred=val_pred)
        result.update(test_true=test_true, test_pred=test_pred)
    return result


class Driver:
    """Plays Tune: asks for trials until the searcher says wait, completes the oldest, repeats."""

    def __init__(self, searcher, evaluate=fake_result, prefix="t"):
        self.s = searcher
        self.evaluate = evaluate
        self.prefix = prefix
        self.live: list[tuple[str, dict]] = []
        self.emitted: list[dict] = []
        self.fed: dict[tuple[str, int], dict[int, dict]] = {}
        self.max_open = 0
        self.n = 0
        self.finished = False

    def fill(self):
        while not self.finished:
            tid = f"{self.prefix}{self.n}"
            sug = self.s.suggest(tid)
            if sug == Searcher.FINISHED:
                self.finished = True
            elif sug is None:
                return
            else:
                self.n += 1
                self.live.append((tid, sug))
                self.emitted.append(sug)
                open_cfgs = {(c["variant"], c["config_id"]) for _, c in self.live}
                self.max_open = max(self.max_open, len(open_cfgs))

    def complete(self, tid=None, **kw):
        i = 0 if tid is None else [t for t, _ in self.live].index(tid)
        tid, sug = self.live.pop(i)
        result = self.evaluate(sug, **kw)
        self.fed.setdefault((sug["variant"], sug["config_id"]), {})[sug["fold_index"]] = result
        self.s.on_trial_complete(tid, result)
        return sug

    def run(self, max_completions=10_000):
        done = 0
        self.fill()
        while self.live and done < max_completions:
            self.complete()
            done += 1
            self.fill()
        return done


def pooled_from_fed(fed_folds: dict[int, dict]) -> float:
    true, pred = [], []
    for i in sorted(fed_folds):
        t, p = val_labels(fed_folds[i])
        true += t
        pred += p
    return megc_scores(true, pred, 3)["uf1"]


def test_one_pooled_value_per_configuration_and_budget_per_variant(tmp_path):
    cfg = make_cfg(tmp_path, ablations={"full": {}, "lstm": {"model.recurrent": "lstm"}})
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    d = Driver(s)
    d.run()
    assert d.finished and not d.live
    assert d.max_open <= 2  # search.concurrent_configs
    keys = [(c["variant"], c["config_id"], c["fold_index"]) for c in d.emitted]
    assert len(keys) == len(set(keys)) == 2 * 4 * 4  # variants x configurations x folds
    for variant in ("full", "lstm"):
        trials = s.study(variant).get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
        for t in trials:
            assert len(t.values) == 1
            assert t.values[0] == pytest.approx(pooled_from_fed(d.fed[(variant, t.number)]))
            assert sorted(t.intermediate_values) == [0, 1, 2, 3]  # steps = fold indices
            emitted = {
                json.dumps(c["overrides"], sort_keys=True)
                for c in d.emitted
                if (c["variant"], c["config_id"]) == (variant, t.number)
            }
            assert emitted == {t.user_attrs["overrides"]}  # every fold: the same overrides
            assert json.loads(t.user_attrs["overrides"]) == t.params
    # the lstm variant fixes model.recurrent: its study never searches it (nor its dependant)
    for t in s.study("lstm").trials:
        assert set(t.params) == {"train.lr"}
    sug = d.emitted[0]
    assert sug["mode"] == "search" and sug["seed"] == 0 and sug["fold"] == FOLDS[0]
    assert sug["label"] == search_label(sug["variant"], sug["config_id"])
    tcfg = search_trial_config(cfg, sug)
    assert tcfg.train.lr == pytest.approx(sug["overrides"]["train.lr"])


def test_trial_overrides_are_applied_over_the_variant(tmp_path):
    cfg = make_cfg(tmp_path, ablations={"full": {}, "small": {"model.dropout": 0.2}})
    tc = {"variant": "small", "overrides": {"train.lr": 0.005, "model.recurrent_units": 32}}
    tcfg = search_trial_config(cfg, tc)
    assert (tcfg.model.dropout, tcfg.train.lr, tcfg.model.recurrent_units) == (0.2, 0.005, 32)


def test_test_labels_never_influence_the_study(tmp_path):
    """Same searcher seed, results differing only in their test labels: identical studies."""

    def values(out, shift, as_table):
        s = FoldFanoutSearcher(make_cfg(out), FOLDS, out)
        d = Driver(s, evaluate=lambda c: fake_result(c, test_shift=shift, as_table=as_table))
        d.run()
        return [(t.params, t.values, t.intermediate_values) for t in s.study("full").trials]

    base = values(tmp_path / "a", 0, False)
    assert base == values(tmp_path / "b", 1, False)
    assert base == values(tmp_path / "c", 2, True)  # runner's prediction-table form
    assert base == values(tmp_path / "d", 1, "flat")
    # what the searcher copies out of a result: the val rows only
    res = fake_result({"config_id": 0, "fold_index": 0, "variant": "full"}, as_table=True)
    t, p = val_labels(res)
    assert t == VAL_TRUE and len(p) == 6


def test_wilcoxon_prunes_and_cancels_pending_folds(tmp_path):
    folds = [f"s{i}" for i in range(6)]
    cfg = make_cfg(tmp_path, trials=3, concurrent_configs=1, pruner_p=0.3, sampler="random")

    def evaluate(c):  # config 0 perfect on every fold, all later ones always wrong
        pred = VAL_TRUE if c["config_id"] == 0 else [(t + 1) % 3 for t in VAL_TRUE]
        return {"val_true": VAL_TRUE, "val_pred": pred}

    s = FoldFanoutSearcher(cfg, folds, tmp_path)
    d = Driver(s, evaluate=evaluate)
    for _ in range(6):  # config 0, one fold at a time
        d.fill()
        d.complete()
    assert s.study("full").trials[0].state == TrialState.COMPLETE
    emitted_c1 = [s.suggest(f"c1f{i}") for i in range(3)]  # Tune starts three folds of config 1
    assert [c["fold_index"] for c in emitted_c1] == [0, 1, 2]
    assert {c["config_id"] for c in emitted_c1} == {1}
    s.on_trial_complete("c1f0", evaluate(emitted_c1[0]))
    assert s.study("full").trials[1].state == TrialState.RUNNING  # one step: never pruned
    assert not cancel_requested(emitted_c1[2])
    s.on_trial_complete("c1f1", evaluate(emitted_c1[1]))
    t1 = s.study("full").trials[1]
    assert t1.state == TrialState.PRUNED
    assert sorted(t1.intermediate_values) == [0, 1]
    assert "pruned after 2 fold(s)" in t1.user_attrs["prune_reason"]
    assert cancel_requested(emitted_c1[2])  # the running fold may stop early
    s.on_trial_complete("c1f2", evaluate(emitted_c1[2]))  # ... or finish: ignored
    assert "fold_002" not in s.study("full").trials[1].user_attrs
    nxt = s.suggest("next")
    assert (nxt["config_id"], nxt["fold_index"]) == (2, 0)  # folds 3..5 of config 1 never emitted
    assert s.study("full").trials[1].values == [0.0]  # Optuna's PRUNED value: last fold score


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_multi_objective_tells_pooled_uf1_and_params_without_pruning(tmp_path, sampler):
    cfg = make_cfg(tmp_path, extra_objectives=["params"], sampler=sampler, trials=2)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    d = Driver(s)
    d.run()
    study = s.study("full")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    from mer.models.summary import model_stats

    for t in study.trials:
        assert t.state == TrialState.COMPLETE and len(t.values) == 2
        overrides = json.loads(t.user_attrs["overrides"])
        params = model_stats(with_overrides(cfg, overrides))["params"]
        assert t.values == [pytest.approx(pooled_from_fed(d.fed[("full", t.number)])), params]
        assert t.intermediate_values == {}  # no pruning reports for multi-objective
    best = write_search_summary(cfg, tmp_path)["variants"]["full"]
    assert {p["config_id"] for p in best["pareto_front"]} <= {0, 1}
    assert set(best["best"]["values"]) == {"uf1", "params"}


def test_failed_fold_fails_configuration_once(tmp_path):
    cfg = make_cfg(tmp_path, trials=2, concurrent_configs=1)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    a, b = s.suggest("a"), s.suggest("b")
    s.on_trial_complete("a", error=True)
    t0 = s.study("full").trials[0]
    assert (
        t0.state == TrialState.FAIL
        and "fold kfold0 trial a errored" in t0.user_attrs["fail_reason"]
    )
    assert cancel_requested(b)
    s.on_trial_complete("b", fake_result(b))  # a running sibling finishing later: ignored
    nxt = s.suggest("c")
    assert (nxt["config_id"], nxt["fold_index"]) == (1, 0)
    s.on_trial_complete("c", {"val_true": [0, 1], "mer_final": True})  # broken result
    t1 = s.study("full").trials[1]
    assert t1.state == TrialState.FAIL and "val_pred" in t1.user_attrs["fail_reason"]
    assert s.suggest("d") == Searcher.FINISHED
    s.on_trial_complete("unknown", fake_result(a))  # not ours: ignored
    assert len(s.study("full").trials) == 2


def test_invalid_combination_fails_at_ask_and_counts_toward_budget(tmp_path):
    space = {
        "model.merge_channels": {"choice": [4, 64]},
        "model.attention_reduction": {"choice": [8, 2]},
    }
    cfg = make_cfg(tmp_path, trials=6, concurrent_configs=1, sampler="random", seed=2, space=space)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    d = Driver(s)
    d.run()
    trials = s.study("full").trials
    assert len(trials) == 6
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert 0 < len(failed) < 6, "seed 2 draws merge_channels 4 with reduction 8 sometimes"
    for t in trials:
        bad = t.params["model.merge_channels"] // t.params["model.attention_reduction"] < 1
        assert (t.state == TrialState.FAIL) == bad
    for t in failed:
        assert "model.attention_reduction" in t.user_attrs["fail_reason"]
        assert not any(c["config_id"] == t.number for c in d.emitted)  # no fold ever ran


def test_model_that_cannot_be_built_fails_before_any_fold(tmp_path):
    # the casme2 preset pools with MSMH scales up to 256: fewer recurrent units cannot work
    space = {"model.recurrent_units": {"int": [16, 64]}}
    cfg = make_cfg(tmp_path, trials=2, space=space)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    assert s.suggest("a") == Searcher.FINISHED
    trials = s.study("full").trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all("model.msmh_scales" in t.user_attrs["fail_reason"] for t in trials)


def test_checkpoint_restore_continues_the_same_study(tmp_path):
    """Tune checkpoint mid-search, more work after it, crash, restore: the study completes."""
    cfg = make_cfg(tmp_path, trials=4, concurrent_configs=2)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    fresh = pickle.dumps(s)  # what Tuner pickles into tuner.pkl at construction
    d = Driver(s)
    d.fill()
    for _ in range(5):  # config 0 done, config 1 has one fold in
        d.complete()
        d.fill()
    ckpt = tmp_path / "searcher-state.pkl"
    s.save(str(ckpt))
    live_at_ckpt = list(d.live)  # Tune re-runs these after a restore
    asked_at_ckpt = len(s.study("full").trials)
    done_at_ckpt = [t.number for t in s.study("full").trials if t.state == TrialState.COMPLETE]
    assert done_at_ckpt == [0] and asked_at_ckpt == 3  # 0 done, 1 and 2 open
    for _ in range(4):  # work after the checkpoint: lands in the journal, not in the checkpoint
        d.complete()
        d.fill()
    states = [t.state for t in s.study("full").trials]
    assert len(states) > asked_at_ckpt  # a configuration asked after the checkpoint ...
    assert states[-1] == TrialState.RUNNING  # ... still running at the crash

    s2 = pickle.loads(fresh)
    s2.restore(str(ckpt))
    d2 = Driver(s2, prefix="r")
    d2.fed = d.fed
    d2.live = list(live_at_ckpt)  # Tune requeues the trials that were live at the checkpoint
    d2.run()
    assert d2.finished
    study = s2.study("full")
    trials = study.get_trials()
    assert len(trials) == 4  # continued to the budget, not restarted
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.values[0] == pytest.approx(pooled_from_fed(d.fed[("full", t.number)]))
        assert sorted(k for k in t.user_attrs if k.startswith("fold_")) == [
            f"fold_{i:03d}" for i in range(4)
        ]
    # the configuration asked after the checkpoint was adopted: its missing folds were emitted
    re_emitted = {(c["config_id"], c["fold_index"]) for c in d2.emitted}
    assert any(cid == asked_at_ckpt for cid, _ in re_emitted)
    assert not any(cid == 0 for cid, _ in re_emitted)  # finished before the crash: left alone


def test_fresh_searcher_on_an_old_study_re_emits_missing_folds(tmp_path):
    cfg = make_cfg(tmp_path, trials=3, concurrent_configs=1)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    d = Driver(s)
    d.fill()
    for _ in range(6):  # config 0 complete, config 1: folds 0, 1 in, fold 2, 3 running
        d.complete()
        d.fill()
    assert [c["fold_index"] for _, c in d.live] == [2, 3]
    partial = write_search_summary(cfg, tmp_path)["variants"]["full"]
    assert partial["finished"] is False and partial["states"] == {"complete": 1, "running": 1}
    assert "INCOMPLETE" in (tmp_path / "search" / "summary.md").read_text()
    s2 = FoldFanoutSearcher(cfg, FOLDS, tmp_path)  # no Tune checkpoint at all
    d2 = Driver(s2, prefix="new")
    d2.fed = d.fed
    d2.run()
    assert [(c["config_id"], c["fold_index"]) for c in d2.emitted[:2]] == [(1, 2), (1, 3)]
    trials = s2.study("full").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[1].values[0] == pytest.approx(pooled_from_fed(d.fed[("full", 1)]))


def test_restore_refuses_other_folds_or_objectives(tmp_path):
    cfg = make_cfg(tmp_path)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    s.suggest("a")
    state = s.get_state()
    other = FoldFanoutSearcher(cfg, FOLDS[:3], tmp_path)
    with pytest.raises(ConfigError, match="other folds"):
        other.set_state(state)
    with pytest.raises(ConfigError, match="was run on folds"):
        other.suggest("x")  # same storage, study says 4 folds
    multi = FoldFanoutSearcher(make_cfg(tmp_path, extra_objectives=["params"]), FOLDS, tmp_path)
    with pytest.raises(ConfigError, match=r"optimises \['maximize'\].*extra_objectives"):
        multi.suggest("y")


def _keys(obj, prefix=""):
    """Every key path of a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v, prefix)


def test_summary_never_reports_search_fold_test_metrics(tmp_path):
    """The search folds' test rows (in the prediction logs) are summarised nowhere: each fold's
    validation subjects are other folds' test subjects. Without held-out subjects the summary
    says that no clean test estimate exists."""
    cfg = make_cfg(tmp_path, trials=3)
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    d = Driver(s, evaluate=lambda c: fake_result(c, as_table=True))
    d.run()
    for (variant, cid), folds in d.fed.items():  # the runner's prediction logs, test rows included
        for i, res in folds.items():
            folder = tmp_path / "trials" / search_label(variant, cid) / "0" / FOLDS[i]
            folder.mkdir(parents=True)
            pd.DataFrame({**res["predictions"], "fold": FOLDS[i]}).to_csv(
                folder / "predictions.csv", index=False
            )
    doc = write_search_summary(cfg, tmp_path)
    study = s.study("full")
    best = doc["variants"]["full"]
    assert best["finished"] is True
    assert best["best"]["config_id"] == study.best_trial.number
    assert best["best"]["values"]["uf1"] == pytest.approx(study.best_value)
    on_disk = json.loads((tmp_path / "search" / "best.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert not [k for k in _keys(on_disk) if "test" in k.rsplit(".", 1)[-1]]
    assert doc["holdout"] == {"n": 0, "subjects": [], "note": NO_HOLDOUT_NOTE}
    assert best["holdout"]["available"] is False
    assert not (tmp_path / "search" / "holdout.yaml").exists()
    md = (tmp_path / "search" / "summary.md").read_text()
    printed = format_search_summary(doc)
    for text in (md, printed):
        assert "No clean test estimate: search.holdout_subjects is 0" in text
        assert "every subject's labels fed the objective" in text and "PROTOCOL.md §4.1" in text
        assert "test uf1" not in text.lower() and "not used for selection" not in text
    table = pd.read_csv(tmp_path / "search" / "summary.csv")
    assert list(table["config_id"]) == [0, 1, 2] and set(table["state"]) == {"COMPLETE"}
    assert (table["params"] > 1_000_000).all() and list(table["folds_done"]) == [4, 4, 4]
    assert not [c for c in table.columns if "test" in c]


def test_storage_options(tmp_path):
    journal = tmp_path / "elsewhere" / "my.journal"
    cfg = make_cfg(tmp_path, storage=str(journal))
    s = FoldFanoutSearcher(cfg, FOLDS, tmp_path / "out")
    s.suggest("a")
    assert s.storage == str(journal) and journal.exists()
    study = optuna.load_study(study_name="unit/full", storage=open_storage(s.storage))
    assert len(study.trials) == 1
    cfg = make_cfg(tmp_path, storage=f"sqlite:///{tmp_path}/s.db")
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="needs sqlalchemy"):
            FoldFanoutSearcher(cfg, FOLDS, tmp_path).suggest("b")
    else:
        FoldFanoutSearcher(cfg, FOLDS, tmp_path).suggest("b")
        study = optuna.load_study(study_name="unit/full", storage=f"sqlite:///{tmp_path}/s.db")
        assert len(study.trials) == 1


def test_constructor_errors(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(ConfigError, match="distinct fold names"):
        FoldFanoutSearcher(cfg, ["a", "a"], tmp_path)
    with pytest.raises(ConfigError, match="unknown variant"):
        FoldFanoutSearcher(cfg, FOLDS, tmp_path, variants=["nope"])
    nocfg = from_dict({"data": {"dataset": "synthetic"}})
    with pytest.raises(ConfigError, match="no `search` section"):
        FoldFanoutSearcher(nocfg, FOLDS, tmp_path)
    fixed = make_cfg(
        tmp_path, ablations={"full": {"train.lr": 0.1}}, space={"train.lr": {"uniform": [0.1, 0.2]}}
    )
    with pytest.raises(ConfigError, match="fixes every searched key"):
        FoldFanoutSearcher(fixed, FOLDS, tmp_path)


def test_folds_per_variant_and_label_order(tmp_path):
    cfg = make_cfg(tmp_path, ablations={"a": {}, "b": {}}, trials=1, concurrent_configs=2)
    s = FoldFanoutSearcher(cfg, {"a": FOLDS, "b": FOLDS[:2]}, tmp_path)
    d = Driver(s)
    d.run()
    got = sorted((c["variant"], c["fold"]) for c in d.emitted)
    assert got == sorted([("a", f) for f in FOLDS] + [("b", f) for f in FOLDS[:2]])
    assert np.all([c["label"] in ("a.c0000", "b.c0000") for c in d.emitted])
