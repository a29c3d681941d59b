"""A two-node Ray cluster on this machine (`ray start --head` + `ray start --address`, one CPU
each, own temp dir), a sweep submitted with `--address`: trials must run on both nodes.

The nodes are started with `--block` in their own process groups and stopped by killing those
groups and the leftover processes of this test's temp dir (never `ray stop`, which would stop every
Ray on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from tests.conftest import tiny_overrides  # noqa: E402
from tests.support import faults  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, temp: str) -> None:
    """Kill a `ray start --block` process group, then whatever Ray process of this test's temp dir
    outlived it (workers run in their own process groups). A graceful SIGTERM drains for 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _cmdline(p).find(temp) >= 0
        ]
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else 0


def test_sweep_runs_trials_on_both_nodes(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="mer-rc-")  # short: Ray's socket paths are limited
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # `ray start` turns on token authentication, which ray.init does not; this throwaway local
    # cluster opts out (a real cluster's driver sets RAY_AUTH_MODE=token and gets the token)
    env.update(PYTHONPATH=str(REPO), MER_TRIAL_HOOKS=faults.HOOKS, MER_TEST_TRIAL_SLEEP="2")
    env.update(RAY_AUTH_MODE="disabled")
    common = ["--num-cpus", "1", "--num-gpus", "0", "--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--include-dashboard",
            "false",
            "--temp-dir",
            temp,
            *common,
        ],
        env=env,
        stdout=open(tmp_path / "head.log", "w"),  # noqa: SIM115 - lives with the node
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = None
    try:
        deadline = time.monotonic() + 120
        while _alive_nodes(address, env) < 1:
            assert time.monotonic() < deadline and head.poll() is None, (
                tmp_path / "head.log"
            ).read_text()[-3000:]
            time.sleep(1)
        worker = subprocess.Popen(
            [str(RAY), "start", "--address", address, "--node-ip-address", "127.0.0.1", *common],
            env=env,
            stdout=open(tmp_path / "worker.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while _alive_nodes(address, env) < 2:
            assert time.monotonic() < deadline and worker.poll() is None, (
                tmp_path / "worker.log"
            ).read_text()[-3000:]
            time.sleep(1)

        out = tmp_path / "out"
        cmd = [
            sys.executable,
            str(REPO / "run_sweep.py"),
            str(REPO / "sweeps" / "demo.yaml"),
            "--address",
            address,
            "--out",
            str(out),
            "--wandb",
            "disabled",
        ]
        for s in tiny_overrides(tmp_path / "cache") + [
            "ablations={full: {}}",
            "seeds=[0]",
            "data.synthetic.subjects=4",
            "train.epochs=1",
            "train.checkpoint_every=0",
        ]:
            cmd += ["--set", s]
        res = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        results = [json.loads(p.read_text()) for p in out.glob("trials/*/*/*/result.json")]
        assert len(results) == 4 and all(r["status"] == "done" for r in results)
        nodes = {r["node"] for r in results}
        assert len(nodes) == 2, nodes
        env_json = json.loads((out / "environment.json").read_text())
        assert env_json["cluster"]["nodes"] == 2
    finally:
        if worker is not None:
            _stop(worker, temp)
        _stop(head, temp)
        shutil.rmtree(temp, ignore_errors=True)
