"""Straight after `make`: the installed commands run from the virtual environment, and the Makefile
picks the PyTorch build for the machine (CPU wheels without an NVIDIA driver), overridably.

The commands are run as a user runs them: the venv's own `mer` script and its python on
run_sweep.py, in a subprocess without PYTHONPATH; and `source .venv/bin/activate` once, as the
README's quick start says. The venv is the one running these tests (`make test`'s .venv, CI's).
The Makefile's decisions are read with `make -n` (print, do not run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sysconfig.get_path("scripts"))
IN_VENV = sys.prefix != sys.base_prefix
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"  # nothing of the venv on PATH: the scripts must stand alone
    return env


def _installed(name: str) -> Path:
    if not IN_VENV:
        pytest.skip("not running from a virtual environment (`make test` creates .venv)")
    path = SCRIPTS / name
    assert path.exists(), f"{path} missing: `pip install -e .` installs the `mer` command there"
    return path


def test_the_installed_mer_command_runs_a_sweeps_dry_run(tmp_path):
    mer = _installed("mer")
    where = subprocess.run(
        [SCRIPTS / "python", "-c", "import mer; print(mer.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(),
    ).stdout.strip()  # fmt: skip
    if Path(where).resolve().parents[1] != REPO:
        pytest.skip(f"the venv's mer is installed from another checkout ({where})")
    version = subprocess.run([mer, "--version"], capture_output=True, text=True, env=_env())
    assert version.returncode == 0 and version.stdout.startswith("mer "), version.stderr
    dry = subprocess.run(
        [mer, "sweep", "sweeps/demo.yaml", "--dry-run", "--set", f"data.cache_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "= 36 trials" in dry.stdout


def test_run_sweep_py_runs_with_the_venvs_python(tmp_path):
    python = _installed("python")
    args = ["run_sweep.py", "sweeps/demo.yaml", "--dry-run", "--set", f"data.cache_dir={tmp_path}"]
    dry = subprocess.run(
        [python, *args], cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "= 36 trials" in dry.stdout


def test_activating_the_venv_once_puts_both_commands_on_path():
    activate = _installed("activate")
    shell = (
        f"source {activate} && command -v mer && mer --help >/dev/null && "
        "python run_sweep.py --help >/dev/null && echo ok"
    )
    done = subprocess.run(
        ["bash", "-c", shell], cwd=REPO, capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [str(SCRIPTS / "mer"), "ok"]


# -------------------------------------------------------------------------------- the Makefile
def _make(*args: str, path: str | None = None) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("`make` is not installed here")
    env = {**os.environ, "PATH": path or os.environ.get("PATH", "")}
    env.pop("TORCH", None)
    env.pop("NVIDIA_DRIVER", None)
    done = subprocess.run(
        [make, "-n", "-B", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _torch_line(out: str) -> str:
    """The recipe that installs torch (a shell if/elif/else over several lines), as one line."""
    lines = out.splitlines()
    (start,) = [i for i, x in enumerate(lines) if 'import torch"' in x]
    end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("fi"))
    return " ".join(x.rstrip(" \\") for x in lines[start : end + 1])


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU-wheel choice is made on Linux")
def test_without_an_nvidia_driver_the_cpu_wheels_are_installed(tmp_path):
    line = _torch_line(_make("venv", f"VENV={tmp_path}/v", "NVIDIA_DRIVER="))
    # a torch already importable is kept; otherwise the CPU build of the pinned version, and
    # where the CPU index cannot be reached the same version from the configured indexes
    assert line.startswith(f'if {tmp_path}/v/bin/python -c "import torch" 2>/dev/null; then')
    probe = "u.urlopen('https://download.pytorch.org/whl/cpu/torch/', timeout=10)"
    keep, fallback, cpu = line.split("elif")[0], *line.split("elif")[1].split("else")
    assert "keeping the torch installed" in keep
    assert probe in fallback and fallback.rstrip().endswith("pip install -q torch==2.13.0;")
    assert f"pip install -q torch==2.13.0 {CPU_INDEX};" in cpu


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU-wheel choice is made on Linux")
def test_the_driver_is_detected_from_nvidia_smi_or_proc(tmp_path):
    """The detection itself: a `nvidia-smi` on PATH means a driver; without it and without
    /proc/driver/nvidia, none."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    system = "/usr/bin:/bin"
    with_driver = _torch_line(_make("venv", f"VENV={tmp_path}/v", path=f"{fake}:{system}"))
    assert "torch==2.13.0;" in with_driver and "extra-index-url" not in with_driver
    if Path("/proc/driver/nvidia").exists() or any(
        Path(d, "nvidia-smi").exists() for d in system.split(":")
    ):
        pytest.skip("this machine has an NVIDIA driver: the no-driver case cannot be seen here")
    without = _torch_line(_make("venv", f"VENV={tmp_path}/v", path=system))
    assert CPU_INDEX in without


def test_torch_can_be_overridden_and_ci_pins_the_same_version(tmp_path):
    line = _torch_line(_make("venv", f"VENV={tmp_path}/v", "TORCH=torch==9.9 --index-url X"))
    assert "pip install -q torch==9.9 --index-url X;" in line
    assert '[ "command line" = file ]' in line  # a given TORCH is never replaced by a fallback
    info = _make("torch-info", "NVIDIA_DRIVER=yes")
    assert "pip install torch==2.13.0" in info
    ci = (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    (ci_version,) = set(re.findall(r"torch==([\d.]+)", ci))
    (make_version,) = re.findall(r"^TORCH_VERSION \?= ([\d.]+)$", makefile, re.M)
    assert ci_version == make_version
