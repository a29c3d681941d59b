"""The levers a row combines (`Setting`), their tokens and the @groups of settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

BASE_BATCH = 8
TOL_FP32 = 1e-4
TOL_BF16 = 5e-2

TOKENS = {
    "baseline": "fp32, batch 8, eager, contiguous, host batches, cudnn.benchmark off",
    "bf16": "bf16 autocast (loss in fp32, as run_fold)",
    "cl": "channels_last_3d model and inputs",
    "res": "clips resident on the device as uint8, batches indexed and converted there "
    "(run_fold's FoldTensors)",
    "bench": "torch.backends.cudnn.benchmark = True",
    "bN": "batch N per model (N != 8 changes the optimisation)",
    "mN": "N models (e.g. N folds) trained at once in one process: stacked parameters + vmap",
    "pN": "N processes on one device, each training its own model (Ray with 1/N GPU each if "
    "ray is importable, else torch.multiprocessing); clips/s summed",
    "graph": "whole step (batch, forward, backward, Adam) captured as one CUDA graph",
    "compile": "torch.compile(model) (mode default)",
    "compile-ro": 'torch.compile(model, mode="reduce-overhead") (CUDA graphs)',
    "pad8": "first convolutions' 3 input channels zero-padded to 8",
    "t2d": "every stride-1 Conv3d as one Conv2d over time-stacked frames (channels → ×8)",
    "sgru": "GRU as an explicit step loop (StepGRU) instead of cuDNN's",
    "notf32": "cuDNN convolutions in strict fp32 (TF32 off)",
}

_FAST = "bf16+cl+res+bench"
GROUPS: dict[str, list[str]] = {
    # order = priority: a time budget cuts from the end
    "main": [
        "baseline",
        "bench",
        "res",
        "bf16",
        "cl",
        "cl+res+bench",
        _FAST,
        f"{_FAST}+t2d",
        "cl+res+bench+t2d",
        f"{_FAST}+pad8",
        f"{_FAST}+b32",
        f"{_FAST}+t2d+b32",
        f"{_FAST}+b64",
        f"{_FAST}+t2d+b64",
    ],
    "stack": [
        "baseline",
        f"{_FAST}+graph",
        f"{_FAST}+t2d+graph",
        f"{_FAST}+m4",
        f"{_FAST}+m8",
        f"{_FAST}+t2d+m8",
        f"{_FAST}+t2d+m8+graph",
        f"{_FAST}+sgru+graph",
    ],
    "packed": ["baseline", f"{_FAST}+p4", f"{_FAST}+p8", f"{_FAST}+t2d+p4"],
    "compile": ["baseline", f"{_FAST}+compile", f"{_FAST}+compile-ro"],
    "cpu": ["baseline", "res", "cl", "cl+res", "t2d+cl+res", "pad8+res", "m2+cl+res"],
}


class SettingError(ValueError):
    """A setting string that names an unknown lever or an impossible combination."""


@dataclass(frozen=True)
class Setting:
    precision: str = "fp32"
    channels_last: bool = False
    resident: bool = False
    benchmark: bool = False
    batch: int = BASE_BATCH
    models: int = 1
    procs: int = 1
    mode: str = "eager"  # eager | graph | compile | compile-ro
    pad8: bool = False
    t2d: bool = False
    step_gru: bool = False
    tf32: bool = True  # PyTorch's default for cuDNN convolutions

    @classmethod
    def parse(cls, text: str) -> Setting:
        values: dict[str, Any] = {}
        flags = {
            "bf16": ("precision", "bf16"),
            "fp32": ("precision", "fp32"),
            "cl": ("channels_last", True),
            "res": ("resident", True),
            "bench": ("benchmark", True),
            "pad8": ("pad8", True),
            "t2d": ("t2d", True),
            "sgru": ("step_gru", True),
            "notf32": ("tf32", False),
        }
        for tok in text.strip().split("+"):
            tok = tok.strip()
            if tok in ("", "baseline"):
                continue
            number = re.fullmatch(r"([bmp])(\d+)", tok)
            if tok in flags:
                key, value = flags[tok]
                values[key] = value
            elif number:
                key = {"b": "batch", "m": "models", "p": "procs"}[number.group(1)]
                values[key] = int(number.group(2))
            elif tok in ("graph", "compile", "compile-ro"):
                if values.get("mode", tok) != tok:
                    raise SettingError(f"setting {text!r}: two execution modes")
                values["mode"] = tok
            else:
                raise SettingError(
                    f"setting {text!r}: unknown token {tok!r}; expected '+'-joined tokens from "
                    f"{', '.join(TOKENS)} (N a number)"
                )
        setting = cls(**values)
        setting.validate(text)
        return setting

    def validate(self, text: str = "") -> None:
        where = f"setting {text or self.name!r}"
        if min(self.batch, self.models, self.procs) < 1:
            raise SettingError(f"{where}: batch, models and processes must be >= 1")
        if self.pad8 and self.t2d:
            raise SettingError(f"{where}: pad8 and t2d are alternatives (t2d pads its own input)")
        if self.models > 1 and not self.resident:
            raise SettingError(f"{where}: stacked models (mN) index a resident pool: add res")
        if self.mode == "graph" and not self.resident:
            raise SettingError(f"{where}: graph captures the batch indexing: add res")
        if self.models > 1 and self.mode.startswith("compile"):
            raise SettingError(f"{where}: compile with stacked models is not supported here")

    @property
    def name(self) -> str:
        parts = []
        if self.precision == "bf16":
            parts.append("bf16")
        for flag, tok in (
            (self.channels_last, "cl"),
            (self.resident, "res"),
            (self.benchmark, "bench"),
            (self.pad8, "pad8"),
            (self.t2d, "t2d"),
            (self.step_gru, "sgru"),
            (not self.tf32, "notf32"),
        ):
            if flag:
                parts.append(tok)
        if self.mode != "eager":
            parts.append(self.mode)
        if self.batch != BASE_BATCH:
            parts.append(f"b{self.batch}")
        if self.models > 1:
            parts.append(f"m{self.models}")
        if self.procs > 1:
            parts.append(f"p{self.procs}")
        return "+".join(parts) or "baseline"

    @property
    def clips_per_step(self) -> int:
        return self.batch * self.models

    @property
    def tolerance(self) -> float:
        return TOL_BF16 if self.precision == "bf16" else TOL_FP32

    @property
    def same_optimisation(self) -> str:
        return "yes" if self.batch == BASE_BATCH else f"no (batch {self.batch})"


def expand_settings(items: list[str]) -> list[Setting]:
    """Comma-separated names and @groups → settings, baseline first, duplicates dropped."""
    names: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item.startswith("@"):
            if item[1:] not in GROUPS:
                raise SettingError(f"unknown group {item!r}; groups: {', '.join(GROUPS)}")
            names.extend(GROUPS[item[1:]])
        else:
            names.append(item)
    settings: list[Setting] = []
    for name in names:
        s = Setting.parse(name)
        if s not in settings:
            settings.append(s)
    base = Setting()
    if base in settings:
        settings.remove(base)
    return [base, *settings]
