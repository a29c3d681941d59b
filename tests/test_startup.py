"""A sweep driver's start (issue 19, start-up to the first trial): the folder is claimed before
Ray starts, what begin() started is stopped and released when the run ends early, the models'
training steps are timed in the background and not again, and the modules a trial's Ray worker
imports before it trains leave scikit-learn and scipy for later."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mer.config import from_dict, load_config, to_dict, with_overrides
from mer.experiment import claim, layout
from mer.experiment.plan import build_plan
from mer.sweep import estimate
from mer.sweep.cluster import BackgroundStart
from mer.sweep.estimate import StepTimer, estimate_sweep
from mer.sweep.options import RunOptions
from mer.sweep.outdir import claim_out_dir
from mer.sweep.startup import Startup
from tests.conftest import tiny_overrides
from tests.test_sweep_results import NAMES, _samples

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, variants: str = "{a: {}, b: {model.dropout: 0.4}}"):
    cfg = load_config(REPO / "sweeps" / "demo.yaml")
    sets = tiny_overrides(tmp_path / "cache") + [f"ablations={variants}", "seeds=[0]"]
    return with_overrides(cfg, sets)


def _holder(out: Path) -> Path:
    return out / layout.CLAIM_DIR / claim.HOLDER_FILE


def test_a_run_that_ends_before_its_session_releases_the_folder(tmp_path):
    """Startup.close: waits for the Ray start (here one that fails at once), releases the folder
    for the next run; closing twice, or after a Session took over, does nothing. (A folder in
    use is refused before any Ray start: test_reliability's lock test.)"""
    cfg = _cfg(tmp_path)
    opts = RunOptions(out=tmp_path / "out")
    held = claim_out_dir(cfg, opts)
    startup = Startup(held, False, BackgroundStart("http://localhost:8265"), StepTimer())
    assert _holder(opts.out).exists()
    startup.close()
    assert not _holder(opts.out).exists()
    startup.close()  # twice: nothing more to release
    again = claim_out_dir(cfg, opts)
    taken = Startup(again, False, BackgroundStart("http://localhost:8265"), StepTimer())
    taken.take()
    taken.close()  # the session owns it now: still held
    assert _holder(opts.out).exists()
    taken.held.release()
    assert not _holder(opts.out).exists()


def _plan(cache_dir):
    """A real plan (MEGC2019 folds from test_sweep_results' table) of the demo's small model,
    two variants that train different models; step times cached under `cache_dir`."""
    demo = load_config(REPO / "sweeps" / "demo.yaml")
    cfg = from_dict(
        {
            "name": "t",
            "data": {
                "dataset": "megc2019",
                "regions": {"policy": "none"},
                "cache_dir": str(cache_dir),
            },
            "protocol": {"split": "megc2019"},
            "model": to_dict(demo)["model"],
            "train": {"threads": 1, "epochs": 2},
            "ablations": {"a": {}, "b": {"model.dropout": 0.4}},
            "seeds": [0],
        }
    )
    return build_plan(cfg, lambda d: (_samples(), NAMES))


def test_models_timed_in_the_background_are_not_timed_again(monkeypatch, tmp_path):
    plan = _plan(tmp_path)
    calls: list[str] = []
    real = estimate.time_train_step
    monkeypatch.setattr(
        estimate, "time_train_step", lambda c, **kw: calls.append(repr(c.model)) or real(c, **kw)
    )
    timer = StepTimer()
    timer.start([v.cfg for v in plan.variants.values()], until=lambda: False)
    timer.join(timeout=120)
    assert len(calls) == 2 and len(timer.timed) == 2  # two models (dropout differs)
    assert all(0 < s < estimate.MAX_TIMING_S for s in timer.timed.values())

    seconds, how = estimate_sweep(plan, plan.trials, 2, 0.0, timer)
    assert len(calls) == 2 and how == "a timed training step on this machine"
    steps = estimate.trial_steps(plan)
    expected = sum(
        steps[t.variant] * timer.seconds(plan.variants[t.variant].cfg) + estimate.TRIAL_OVERHEAD_S
        for t in plan.trials
    )
    assert seconds == pytest.approx(expected / 2 + estimate.WORKER_START_S)


def test_a_step_time_is_cached_by_model_and_machine_and_taken_again_when_stale(
    monkeypatch, tmp_path
):
    """A second start on this machine reads the timing (no torch in the driver while Ray
    starts); another machine, an old timing or a damaged file are timed again."""
    cfg = _plan(tmp_path).variants["a"].cfg
    calls: list[float] = []
    monkeypatch.setattr(estimate, "time_train_step", lambda c, **kw: calls.append(0.25) or 0.25)
    assert estimate.step_time(cfg) == 0.25 and len(calls) == 1
    path = estimate.step_time_path(cfg)
    assert path.parent == tmp_path / estimate.STEP_TIMES_DIR and path.exists()
    assert StepTimer().seconds(cfg) == 0.25 and len(calls) == 1  # a fresh driver: from disk
    other = _plan(tmp_path).variants["b"].cfg  # another model: its own entry
    assert estimate.step_time_path(other) != path
    # another machine sharing the cache folder
    monkeypatch.setattr(estimate, "_machine", lambda: {"host": "elsewhere", "cpu": "x", "cpus": 64})
    assert estimate.step_time_path(cfg) != path
    monkeypatch.undo()
    monkeypatch.setattr(estimate, "time_train_step", lambda c, **kw: calls.append(0.5) or 0.5)
    # older than 30 days, or unreadable: timed again and rewritten
    assert (
        estimate.cached_step_time(cfg, now=time.time() + estimate.STEP_TIME_MAX_AGE_S + 1) is None
    )
    path.write_text("{not json")
    assert estimate.cached_step_time(cfg) is None
    assert estimate.step_time(cfg) == 0.5 and len(calls) == 2
    assert estimate.cached_step_time(cfg) == 0.5


def test_background_timing_stops_once_ray_is_up(tmp_path):
    cfgs = [v.cfg for v in _plan(tmp_path).variants.values()]
    timer = StepTimer()
    timer.start(cfgs, until=lambda: True)  # Ray was up before the first model
    timer.join(timeout=60)
    assert timer.timed == {}


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh Python has imported after running `code` in the repository."""
    loaded = f"[m for m in {modules!r} if m in sys.modules]"
    probe = f"{code}\nimport json, sys\nprint(json.dumps({loaded}))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_a_trial_worker_imports_neither_sklearn_nor_scipy_before_it_scores():
    """What a trial's fresh Ray worker imports to start training (the trainable's module, the
    training code): scikit-learn and scipy (about 1.5 s together) load at its first scores."""
    code = "import mer.sweep.trial, mer.train, mer.sweep.session"
    assert _loaded_after(code, ("sklearn", "scipy")) == []


def test_mer_sweep_reaches_the_ray_start_without_torch_ray_or_sklearn():
    """What `mer sweep` imports and runs before `begin` starts Ray (mer.cli.sweep.run: the
    config, the folder checks, the start-up code): torch, Ray itself and scikit-learn load later,
    while Ray starts in the background (pandas loads with the dataset catalog the config checks
    names against)."""
    code = (
        "import mer.cli.sweep, mer.sweep.space, mer.sweep.console, mer.sweep.options,"
        " mer.sweep.outdir, mer.sweep.startup\n"
        "from mer.sweep.space import load_search_config\n"
        "load_search_config('sweeps/demo.yaml', [])"
    )
    assert _loaded_after(code, ("torch", "ray", "sklearn", "scipy")) == []


PRESTART_PROBE = """
import os, time
from mer.sweep.cluster import connect
connect(None, num_cpus=2)
time.sleep(3)  # Ray prestarts its workers right after the driver connects
workers = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if cmd.startswith(b"ray::IDLE"):  # a Ray worker names itself so while it has no task
        workers += 1
print("WORKERS", workers, os.environ.get("RAY_prestart_worker_first_driver"))
"""


@pytest.mark.slow
def test_a_local_ray_starts_no_idle_workers_the_trials_would_not_use(tmp_path):
    """Ray would start one idle worker per CPU for the first driver; Tune's trial actors never
    run in them (each gets a worker of its own), so a local Ray started by mer starts none, and
    the setting does not leak into the driver's environment."""
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's socket paths must stay short
    try:
        out = subprocess.run(
            [sys.executable, "-c", PRESTART_PROBE],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(REPO), "RAY_TMPDIR": ray_tmp},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WORKERS 0 None" in out.stdout, out.stdout
