"""Shared fixtures: one finished tiny ablation sweep on a real local Ray, used by the sweep-engine
and report tests (starting Ray and training is the slow part, so it runs once per session).

Ray is started with 4 CPUs and 1 fake GPU, trials ask for 0.25 GPU + 0.5 CPU with up to 8 allowed
at once, so the GPU share is what limits them to 4 (checked with a start barrier of 4 and the
trials' start/end times). Test hooks make one trial fail once right after its first checkpoint
(it must resume from it) and one trial fail every time (its variant/seed must be INCOMPLETE).
W&B runs offline with a fake API key in the environment that must not appear in any file.
"""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FINISHED_SWEEP_FAKE_KEY = "fakewandbkey-5f3c9e0d1b2a4c6e8f7a"
FAIL_ONCE = "full/*sub02/s0"
FAIL_ALWAYS = "regions_none/*/sub03/s1"


def tiny_overrides(cache: Path) -> list[str]:
    """sweeps/demo.yaml shrunk: 3 subjects (3 LOSO folds), 4 frames of 16 px, 3 epochs."""
    return [
        f"data.cache_dir={cache}",
        "data.synthetic.subjects=3",
        "data.synthetic.clips=6",
        "data.synthetic.frames=8",
        "data.synthetic.size=32",
        "data.frames.count=4",
        "data.size=16",
        "train.epochs=3",
        "train.checkpoint_every=1",
    ]


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory):
    ray = pytest.importorskip("ray")
    from mer.config import load_config
    from mer.sweep.ablation import run_ablation
    from mer.sweep.options import RunOptions
    from tests.support.faults import FaultHooks

    base = tmp_path_factory.mktemp("sweep")
    events = base / "events.jsonl"
    events.touch()
    cfg = load_config(
        REPO / "sweeps" / "demo.yaml",
        tiny_overrides(base / "cache")
        + [
            "ablations={full: {}, regions_none: {data.regions.policy: none}}",
            "seeds=[0, 1]",
            "resources={gpu_per_trial: 0.25, cpu_per_trial: 0.5, max_concurrent: 8, "
            "max_failures: 1}",
        ],
    )
    hooks = FaultHooks(
        events=str(events),
        fail_once_dir=str(base / "fail-once"),
        fail_match=FAIL_ONCE,
        fail_always=FAIL_ALWAYS,
        barrier=4,
    )
    out = base / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_API_KEY", FINISHED_SWEEP_FAKE_KEY)
        mp.setenv("PYTHONPATH", str(REPO))  # Ray workers import mer from this checkout
        temp = tempfile.mkdtemp(prefix="mer-ray-")  # short: Ray's socket paths are limited
        ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, _temp_dir=temp)
        try:
            status = run_ablation(
                cfg,
                RunOptions(out=out, wandb="offline", trial_hooks=hooks, report_every_s=0.0),
            )
        finally:
            ray.shutdown()
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return {"cfg": cfg, "out": out, "status": status, "events": lines}


# The SIGINT handler pytest's process started with (Python's: raise KeyboardInterrupt).
_SIGINT_AT_START = signal.getsignal(signal.SIGINT)


@pytest.fixture(autouse=True)
def _sigint_handler_restored():
    """Ray Tune installs its own SIGINT handler for an in-process run and never puts the old one
    back; without this, every later test in the process (SIGTERM takes the SIGINT path) would
    talk to a finished run's handler."""
    yield
    signal.signal(signal.SIGINT, _SIGINT_AT_START)


@pytest.fixture(scope="session", autouse=True)
def _sigterm_runs_cleanups():
    """`timeout make test` sends SIGTERM: turn it into KeyboardInterrupt so `finally` blocks (the
    two-node Ray test's `ray stop`, Ray shutdowns) run instead of leaving clusters behind."""
    import signal

    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    yield
    signal.signal(signal.SIGTERM, previous)
