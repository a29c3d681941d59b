"""mer.sweep.resources: per-trial resources and concurrency from the config and plain resource
dicts (what `ray.cluster_resources()` and the autoscaler report), with no Ray running."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mer.config import from_dict
from mer.errors import ConfigError
from mer.sweep.resources import capacity, check_devices, max_concurrent, trial_resources

REPO = Path(__file__).resolve().parents[1]
INF = {"CPU": math.inf, "GPU": math.inf}


def _cfg(**resources):
    return from_dict({"resources": resources})


def test_importing_the_rules_imports_no_ray():
    code = "import sys, mer.sweep.resources; print('ray' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_capacity_local_remote_and_waiting_for_gpus():
    head, ceiling = {"CPU": 8.0}, {"CPU": 40.0, "GPU": 8.0}
    # a Ray started here has no autoscaler: what it has is all there is
    assert capacity(_cfg(), head, ceiling, remote=False) == {"CPU": 40.0, "GPU": 0.0}
    # a cluster's autoscaler may grow it to its ceiling
    assert capacity(_cfg(), head, ceiling) == {"CPU": 40.0, "GPU": 8.0}
    assert capacity(_cfg(), {"CPU": 64.0, "GPU": 2.0}, ceiling) == {"CPU": 64.0, "GPU": 8.0}
    # wait_for_gpus false: only the GPUs that are up count
    assert capacity(_cfg(wait_for_gpus=False), head, ceiling) == {"CPU": 40.0, "GPU": 0.0}
    # wait_for_gpus true with no known ceiling: unbounded, max_workers decides
    assert capacity(_cfg(wait_for_gpus=True), head, {}) == INF
    assert capacity(_cfg(wait_for_gpus=True), head, ceiling) == {"CPU": 40.0, "GPU": 8.0}
    assert capacity(_cfg(wait_for_gpus=True), head, {}, remote=False) == {"CPU": 8.0, "GPU": 0.0}


def test_trial_resources_fall_back_to_cpu_and_say_why(caplog):
    with caplog.at_level(logging.INFO, logger="mer.sweep.resources"):
        assert trial_resources(_cfg(gpu_per_trial=0.5), {"CPU": 4.0}) == {"CPU": 1.0, "GPU": 0.0}
    assert caplog.records[-1].levelno == logging.INFO
    assert "no GPUs: trials run on CPU (resources.gpu_per_trial 0.5 -> 0)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mer.sweep.resources"):
        res = trial_resources(_cfg(), {"CPU": 4.0}, {}, remote=True)
    assert res == {"CPU": 1.0, "GPU": 0.0}
    assert caplog.records[-1].levelno == logging.WARNING
    assert "set resources.wait_for_gpus: true" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mer.sweep.resources"):
        cpu_only = trial_resources(_cfg(gpu_per_trial=0, cpu_per_trial=2), {"CPU": 4.0})
    assert cpu_only == {"CPU": 2.0, "GPU": 0.0} and not caplog.records
    # unbounded (wait_for_gpus with no ceiling): asks, and says the config decides
    with caplog.at_level(logging.WARNING, logger="mer.sweep.resources"):
        res = trial_resources(_cfg(wait_for_gpus=True), {"CPU": 4.0}, {}, remote=True)
    assert res == {"CPU": 1.0, "GPU": 0.25}
    assert "wait for the autoscaler to start GPU workers (resources.wait_for_gpus)" in caplog.text


def test_trial_resources_refuse_what_no_node_could_hold():
    with pytest.raises(ConfigError) as err:
        trial_resources(_cfg(cpu_per_trial=6), {"CPU": 4.0, "GPU": 1.0})
    assert str(err.value) == "resources.cpu_per_trial: 6 CPUs per trial but the cluster has 4"
    with pytest.raises(ConfigError) as err:
        trial_resources(_cfg(gpu_per_trial=3), {"CPU": 4.0}, {"GPU": 2.0}, remote=True)
    assert str(err.value) == (
        "resources.gpu_per_trial: 3 GPUs per trial but the cluster has 2; no trial could ever start"
    )
    # the ceiling counts: 6 CPUs fit once the autoscaler has added nodes
    grown = trial_resources(
        _cfg(cpu_per_trial=6), {"CPU": 4.0}, {"CPU": 12.0, "GPU": 1.0}, remote=True
    )
    assert grown == {"CPU": 6.0, "GPU": 0.25}


@pytest.mark.parametrize(
    "cfg, res, cluster, requested, n, expected",
    [
        ({}, {"CPU": 1.0, "GPU": 0.0}, {"CPU": 6.0}, 3, 100, 3),  # --max-concurrent wins
        ({"max_concurrent": 5}, {"CPU": 1.0, "GPU": 0.0}, {"CPU": 64.0}, None, 100, 5),
        ({"max_concurrent": 5}, {"CPU": 1.0, "GPU": 0.0}, {"CPU": 64.0}, 2, 100, 2),
        ({}, {"CPU": 1.5, "GPU": 0.0}, {"CPU": 8.0}, None, 100, 5),  # floor(8 / 1.5)
        ({}, {"CPU": 1.0, "GPU": 0.1}, {"CPU": 32.0, "GPU": 1.0}, None, 100, 10),  # 1/0.1 < 10
        ({}, {"CPU": 4.0, "GPU": 0.25}, {"CPU": 8.0, "GPU": 2.0}, None, 100, 2),  # CPU-bound
        ({}, {"CPU": 1.0, "GPU": 0.25}, {"CPU": 8.0, "GPU": 2.0}, None, 3, 3),  # few trials
        ({}, {"CPU": 1.0, "GPU": 0.25}, INF, None, 37, 37),  # the autoscaler decides
        ({}, {"CPU": 0.0, "GPU": 0.0}, {"CPU": 6.0}, None, 100, 6),  # nothing asked: CPUs
        ({}, {"CPU": 0.0, "GPU": 0.0}, INF, None, 12, 12),
        ({}, {"CPU": 1.0, "GPU": 0.0}, {"CPU": 6.0}, None, 0, 1),  # never below 1
    ],
)
def test_max_concurrent(cfg, res, cluster, requested, n, expected):
    assert max_concurrent(_cfg(**cfg), res, cluster, requested, n) == expected


def test_check_devices_names_every_cuda_variant_and_the_reason():
    auto, cuda = from_dict({}), from_dict({"train": {"device": "cuda"}})
    no_share = from_dict({"resources": {"gpu_per_trial": 0}})
    plan = SimpleNamespace(
        cfg=no_share,
        variants={n: SimpleNamespace(cfg=c) for n, c in [("a", cuda), ("b", auto), ("c", cuda)]},
    )
    with pytest.raises(ConfigError) as err:
        check_devices(plan, {"CPU": 1.0, "GPU": 0.0})
    assert str(err.value).startswith(
        "train.device: cuda (variants a, c), but resources.gpu_per_trial is 0, so no trial"
    )
    check_devices(plan, {"CPU": 1.0, "GPU": 0.5})
