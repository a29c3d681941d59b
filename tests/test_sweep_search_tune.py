"""FoldFanoutSearcher inside a real Ray Tune run (local Ray, 2 CPUs): fan-out, one value per
configuration, interrupt + `Tuner.restore` continuing the same study.

The trainable here is test-only: it returns deterministic fake val/test predictions for the fold
(it tests the searcher inside Tune, not training). The end-to-end run through the real trainable
and `run_sweep.py` is test_sweep_search_e2e.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from optuna.trial import TrialState  # noqa: E402
from ray import tune  # noqa: E402

from mer.sweep.search import FoldFanoutSearcher, cancel_requested  # noqa: E402
from tests import test_sweep_search as unit  # noqa: E402

FOLDS = unit.FOLDS


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Workers import `mer` and this test module by name: put the checkout on their path.
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


def fake_fold(config):
    """Test-only trainable: the fold's fake predictions; stops early once cancelled."""
    if cancel_requested(config):
        tune.report({"cancelled": True})
        return
    tune.report(unit.fake_result(config, as_table=True))


class InterruptAfter(tune.Callback):
    """Sends Tune's stop signal (as Ctrl+C would) once, after `n` fold trials completed.

    Callbacks are restored with the Tuner, so `marker` remembers that it already fired.
    """

    def __init__(self, n, marker):
        self.n = n
        self.marker = Path(marker)
        self.seen = 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.seen += 1
        if self.seen >= self.n and not self.marker.exists():
            self.marker.write_text("interrupted\n")
            os.kill(os.getpid(), signal.SIGUSR1)


def _tuner(searcher, storage, name, callbacks=()):
    return tune.Tuner(
        fake_fold,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=0, callbacks=list(callbacks)
        ),
    )


def test_search_in_tune_tells_one_pooled_value_per_configuration(tmp_path):
    cfg = unit.make_cfg(tmp_path, trials=3, concurrent_configs=2)
    searcher = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    grid = _tuner(searcher, tmp_path / "ray", "search").fit()
    assert not grid.errors
    configs = [r.config for r in grid]
    keys = sorted((c["config_id"], c["fold_index"]) for c in configs)
    assert keys == [(n, i) for n in range(3) for i in range(4)]  # 3 configurations x 4 folds
    study = FoldFanoutSearcher(cfg, FOLDS, tmp_path).study("full")  # reopened from storage
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for t in trials:
        folds = {
            c["fold_index"]: unit.fake_result(c, as_table=True)
            for c in configs
            if c["config_id"] == t.number
        }
        assert t.values == [pytest.approx(unit.pooled_from_fed(folds))]


def test_interrupted_search_resumes_the_same_study(tmp_path):
    cfg = unit.make_cfg(tmp_path, trials=4, concurrent_configs=2)
    searcher = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    _tuner(searcher, tmp_path / "ray", "search", [InterruptAfter(6, tmp_path / "fired")]).fit()
    probe = FoldFanoutSearcher(cfg, FOLDS, tmp_path)
    first = probe.study("full").get_trials()
    states = [t.state for t in first]
    assert TrialState.COMPLETE in states and TrialState.RUNNING in states  # half-finished search
    assert len(first) < 4 or states.count(TrialState.COMPLETE) < 4

    path = str(tmp_path / "ray" / "search")
    assert tune.Tuner.can_restore(path)
    grid = tune.Tuner.restore(path, trainable=fake_fold).fit()
    assert not grid.errors
    keys = sorted((r.config["config_id"], r.config["fold_index"]) for r in grid)
    assert keys == [(n, i) for n in range(4) for i in range(4)]  # each fold trial exactly once
    study = FoldFanoutSearcher(cfg, FOLDS, tmp_path).study("full")
    trials = study.get_trials()
    assert len(trials) == 4  # grew to the budget, numbering continued (not restarted)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [t.params for t in trials[: len(first)]] == [t.params for t in first]
    for t in trials:  # every configuration still pooled over exactly its 4 folds
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]
        folds = {
            i: unit.fake_result({"config_id": t.number, "fold_index": i, "variant": "full"})
            for i in range(4)
        }
        assert t.values == [pytest.approx(unit.pooled_from_fed(folds))]
