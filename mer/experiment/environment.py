"""What a results folder records about the machine and code that produced it (environment.json)."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mer.config import config_hash, from_dict
from mer.errors import ConfigError
from mer.util.jsonio import read_json

VERSIONED = ("torch", "ray", "optuna", "wandb", "numpy", "pandas", "mer")


def _version(module: str) -> str | None:
    try:
        return version(module)
    except PackageNotFoundError:  # absent package: no version
        return None


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding the `mer` package, if any."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, git commit, host and GPUs; never environment variables (they may hold keys).

    Ray is asked about its cluster only when the caller already connected (the sweep driver):
    this module never starts it."""
    env: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),  # this (re)start of the run
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "versions": {m: _version(m) for m in VERSIONED},
        "git": git_commit(),
        "argv": list(argv) if argv is not None else None,
    }
    gpus: list[str] = []
    try:
        import torch  # lazy: ~2 s to import; reports and summaries read this module too

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    env["driver_gpus"] = gpus
    ray = sys.modules.get("ray")  # only a Ray the driver imported and connected
    try:
        if ray is not None and ray.is_initialized():
            res = ray.cluster_resources()
            env["cluster"] = {
                "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
                "CPU": res.get("CPU", 0),
                "GPU": res.get("GPU", 0),
                "accelerators": sorted(k for k in res if k.startswith("accelerator_type:")),
            }
    except Exception:  # noqa: BLE001 - diagnostics only
        pass
    return env


def run_record(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """What a report says about where its numbers come from: the run's date (environment.json's,
    else that file's modification time), git commit (and whether the checkout had uncommitted
    changes) and the config hash (mer.config.config_hash of the resolved config)."""
    path = Path(run_dir) / "environment.json"
    env = read_json(path, what="the run's environment") if path.exists() else {}
    date = env.get("date")
    if date is None and path.exists():
        date = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    git = env.get("git") or {}
    try:
        chash = config_hash(from_dict(config)) if config else None
    except ConfigError:  # a config this mer no longer reads: hash what is there
        chash = config_hash({k: v for k, v in config.items() if k != "report"})
    return {"date": date, "commit": git.get("commit"), "dirty": git.get("dirty"), "hash": chash}


def run_line(record: dict[str, Any]) -> str:
    """`Run: 2026-12-06T10:00:00+00:00, commit 1a2b3c4d5e6f (uncommitted changes), config hash
    93569bc9aab6d337.`"""
    commit = record.get("commit")
    text = f"commit {commit[:12]}" if commit else "commit unknown"
    if commit and record.get("dirty"):
        text += " (with uncommitted changes)"
    return (
        f"Run: {record.get('date') or 'date unknown'}, {text}, config hash "
        f"{record.get('hash') or 'unknown'}."
    )
