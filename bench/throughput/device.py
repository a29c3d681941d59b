"""The device a run measures: which one, its cuDNN/TF32 flags, and how a result describes it."""

from __future__ import annotations

import contextlib
import gc
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def cleanup(device: torch.device) -> None:
    """Free what the last row left, so that the next row's memory figure is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ backend flags
def _new_tf32_api() -> bool:
    return hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


def tf32_state() -> dict[str, Any]:
    """The TF32 settings as PyTorch reports them (new API where it exists: mixing the legacy
    `allow_tf32` flags with it is an error in recent PyTorch)."""
    if _new_tf32_api():
        return {
            "conv": torch.backends.cudnn.conv.fp32_precision,
            "rnn": torch.backends.cudnn.rnn.fp32_precision,
            "matmul": torch.backends.cuda.matmul.fp32_precision,
        }
    return {
        "cudnn": torch.backends.cudnn.allow_tf32,
        "matmul": torch.backends.cuda.matmul.allow_tf32,
    }


def _set_tf32(state: dict[str, Any]) -> None:
    if _new_tf32_api():
        torch.backends.cudnn.conv.fp32_precision = state["conv"]
        torch.backends.cudnn.rnn.fp32_precision = state["rnn"]
        torch.backends.cuda.matmul.fp32_precision = state["matmul"]
    else:
        torch.backends.cudnn.allow_tf32 = state["cudnn"]
        torch.backends.cuda.matmul.allow_tf32 = state["matmul"]


def _strict_state() -> dict[str, Any]:
    if _new_tf32_api():
        return {"conv": "ieee", "rnn": "ieee", "matmul": "ieee"}
    return {"cudnn": False, "matmul": False}


def set_backend_flags(*, benchmark: bool, strict_fp32: bool) -> None:
    """cudnn.benchmark, and TF32 off when `strict_fp32` (left as it is otherwise)."""
    torch.backends.cudnn.benchmark = benchmark
    if strict_fp32:
        _set_tf32(_strict_state())


@contextlib.contextmanager
def backend_flags(*, benchmark: bool, strict_fp32: bool):
    """cudnn.benchmark and TF32 for one block; restored afterwards."""
    old_bench = torch.backends.cudnn.benchmark
    old_tf32 = tf32_state()
    set_backend_flags(benchmark=benchmark, strict_fp32=strict_fp32)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old_bench
        _set_tf32(old_tf32)


# --------------------------------------------------------------------------------- description
def _git() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def describe_device(device: torch.device) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "git": _git(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta["device"] = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        meta["cuda"] = torch.version.cuda
        meta["cudnn"] = torch.backends.cudnn.version()
    else:
        meta["device"] = f"CPU ({platform.processor() or platform.machine()}, "
        meta["device"] += f"{torch.get_num_threads()} threads)"
    meta["tf32"] = tf32_state()
    return meta
