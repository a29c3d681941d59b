"""Training throughput of the paper model on one device: one table over a matrix of settings.

    python bench/throughput.py                                   # default matrix for this device
    python bench/throughput.py --tiny --settings baseline,res,cl+res --steps 4
    python bench/throughput.py --settings @main --out OUT --tag main --time-budget 240
    python bench/throughput.py --e2e [--e2e-ray] --out OUT --tag e2e   # one real trial, timed
    python bench/throughput.py --merge OUT/main.json OUT/e2e.json --out OUT --tag results
    python bench/throughput.py --list                            # tokens and @groups

A setting is a '+'-joined list of levers (`--list`), e.g. `bf16+cl+res+bench+t2d+m8`; the plain
`baseline` is fp32, batch 8, one process, eager, contiguous tensors, cudnn.benchmark off, and each
batch copied from pageable host float32 tensors (what a plain PyTorch loop does). Every row trains
the same model (casme2 preset, 30×128×128×3 clips; `--tiny`: 8×32×32 and small widths) with
run_fold's loss (weighted CE + L2) and Adam, on random uint8 clips, and reports:

- clips/s: median over `--repeats` windows of `--steps` steps (steps are those of a batch-8 model;
  rows with more clips per step run proportionally fewer, at least 3), timed with CUDA events;
  `±%` is (max − min) / median over the windows;
- TFLOP/s: useful FLOPs (FlopCounterMode on one fp32 baseline step, forward + backward, per clip;
  padding that a fast path adds is not counted) × clips/s; `%ceil` against a bf16 8192³ matmul
  measured in the same run (on CPU: an fp32 1024³ matmul, not a GPU figure);
- mem MB: torch.cuda.max_memory_allocated while the row ran (packed: summed over processes,
  CUDA contexts not included); on CPU the process's resident set size;
- speed-up: clips/s over the baseline row of the same run;
- check: the row's training function against the plain recipe (fp32, eager, host batches, TF32
  off) from the same weights and batches, dropout off, over `--check-steps` steps: max relative
  difference of the weighted-CE trajectory, tolerance 1e-4 for fp32 rows (TF32 off in the check)
  and 5e-2 for bf16 rows; stacked models: every member against its own single-model run;
  packed: process 0 against the single-model run;
- optim: whether the optimisation is the paper's (batch 8); a larger batch is a different run.

Rows are printed as soon as they are measured and the files under `--out` are rewritten after each
row, so a run cut by a timeout keeps what it measured. Imports only torch, numpy and mer's model and
training pieces (ray only for packed rows when installed; pandas only for --e2e).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import logging
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mer.config import ModelConfig, TrainConfig  # noqa: E402
from mer.models import PRESETS, build_model  # noqa: E402
from mer.training import fastpath as fp  # noqa: E402
from mer.training.fold_data import FoldTensors  # noqa: E402
from mer.training.loss import l2_parameters, l2_penalty, weighted_ce  # noqa: E402
from mer.training.optim import build_optimizer  # noqa: E402

log = logging.getLogger("bench.throughput")

PAPER_SHAPE = (30, 128, 128)
TINY_SHAPE = (8, 16, 16)
TINY_MODEL: dict[str, Any] = {
    "conv_a_channels": 4,
    "conv_b_channels": 4,
    "merge_channels": 8,
    "attention_reduction": 4,
    "dense": [16, 8],
    "recurrent_units": 16,
    "msmh_scales": [2, 4, 8, 16],
    "head": [16, 8],
}
BASE_BATCH = 8
TOL_FP32 = 1e-4
TOL_BF16 = 5e-2
SEQ_LEN = 16  # distinct batches per member, cycled

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


# ------------------------------------------------------------------------------------ settings
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


@dataclass(frozen=True)
class Spec:
    """What every row shares: model, clip shape, data pool and step counts."""

    model_cfg: ModelConfig
    shape: tuple[int, int, int]
    pool: int = 64
    seed: int = 0
    steps: int = 30
    warmup: int = 5
    repeats: int = 3
    check_steps: int = 5
    tiny: bool = False

    def steps_for(self, s: Setting) -> int:
        return max(3, round(self.steps * BASE_BATCH / s.clips_per_step))


def make_spec(args: argparse.Namespace) -> Spec:
    cfg = PRESETS["casme2"]
    if args.tiny:
        cfg = replace(cfg, **TINY_MODEL)
    pool = args.pool or (16 if args.tiny else 64)
    return Spec(
        model_cfg=cfg,
        shape=TINY_SHAPE if args.tiny else PAPER_SHAPE,
        pool=pool,
        seed=args.seed,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        check_steps=args.check_steps,
        tiny=bool(args.tiny),
    )


def no_dropout(cfg: ModelConfig) -> ModelConfig:
    return replace(cfg, dropout=0.0, dense_out_dropout=0.0, head_in_dropout=0.0, head_dropout=0.0)


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


@contextlib.contextmanager
def backend_flags(*, benchmark: bool, strict_fp32: bool):
    """cudnn.benchmark and TF32 for one block; restored afterwards."""
    old_bench = torch.backends.cudnn.benchmark
    old_tf32 = tf32_state()
    torch.backends.cudnn.benchmark = benchmark
    if strict_fp32:
        _set_tf32(_strict_state())
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old_bench
        _set_tf32(old_tf32)


# --------------------------------------------------------------------------------------- data
_CACHE: dict[tuple, Any] = {}


def clip_pool(spec: Spec) -> dict[str, torch.Tensor]:
    """Random uint8 clips (N, T, H, W, C) for both branches and labels, on the host (cached).
    Random, not zeros: zeros can run faster than real data."""
    key = ("pool", spec.shape, spec.pool, spec.seed, spec.model_cfg.in_channels)
    if key not in _CACHE:
        g = torch.Generator().manual_seed(1000 + spec.seed)
        t, h, w = spec.shape
        shape = (spec.pool, t, h, w, spec.model_cfg.in_channels)
        _CACHE[key] = {
            "a": torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
            "b": torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
            "y": torch.randint(0, spec.model_cfg.num_classes, (spec.pool,), generator=g),
        }
    return _CACHE[key]


def host_pool(spec: Spec) -> dict[str, torch.Tensor]:
    """The baseline's data: plain pageable float32 (N, C, T, H, W) tensors in [0, 1]."""
    key = ("host", spec.shape, spec.pool, spec.seed, spec.model_cfg.in_channels)
    if key not in _CACHE:
        pool = clip_pool(spec)
        _CACHE[key] = {
            k: pool[k].permute(0, 4, 1, 2, 3).float().div_(255.0).contiguous() for k in ("a", "b")
        }
    return _CACHE[key]


def index_sequence(spec: Spec, batch: int, member: int, check: bool) -> torch.Tensor:
    """(L, batch) distinct pool rows per step for one member; the same for every setting."""
    if batch > spec.pool:
        raise SettingError(f"batch {batch} is larger than the clip pool ({spec.pool}); see --pool")
    g = torch.Generator().manual_seed(spec.seed * 7919 + member * 104729 + (17 if check else 0))
    length = max(SEQ_LEN, spec.check_steps)
    return torch.stack([torch.randperm(spec.pool, generator=g)[:batch] for _ in range(length)])


# ------------------------------------------------------------------------------------- runner
def build(cfg: ModelConfig, spec: Spec, s: Setting, seed: int, device: torch.device):
    torch.manual_seed(seed)
    model = build_model(cfg, input_shape=spec.shape)
    if s.pad8:
        fp.pad_input_channels(model, 8)
    if s.t2d:
        fp.use_time_unfold_convs(model, 8)
    if s.step_gru:
        fp.use_step_gru(model)
    model = model.to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model.train()


class Runner:
    """The model(s), optimiser and batch source of one setting; `step()` trains one batch.

    Member i of a runner (`member` + i overall) is built from seed `spec.seed + member + i` and
    reads its own batch sequence, so a stacked member, a packed process and a single-model
    reference with the same member number see the same weights and batches.
    """

    def __init__(
        self, s: Setting, spec: Spec, device: torch.device, *, check: bool = False, member: int = 0
    ):
        self.s, self.spec, self.device = s, spec, device
        self.cuda = device.type == "cuda"
        cfg = no_dropout(spec.model_cfg) if check else spec.model_cfg
        self.amp = torch.bfloat16 if s.precision == "bf16" else None
        tc = TrainConfig()
        self.l2 = tc.l2
        self.class_w = torch.tensor(tc.class_weights, dtype=torch.float32, device=device)
        seq = torch.stack(
            [index_sequence(spec, s.batch, member + i, check) for i in range(s.models)], dim=1
        )  # (L, M, B)
        self.seq_len = seq.shape[0]
        models = [build(cfg, spec, s, spec.seed + member + i, device) for i in range(s.models)]
        if s.models == 1:
            self.model: Any = models[0]
            self.params = list(self.model.parameters())
            self.l2_tensors = [p for _, p in l2_parameters(self.model)]
            self.fmodel = self.model
            if s.mode == "compile":
                self.fmodel = torch.compile(self.model)
            elif s.mode == "compile-ro":
                self.fmodel = torch.compile(self.model, mode="reduce-overhead")
        else:
            self.model = fp.StackedModels(models, compute_dtype=self.amp).train()
            self.params = self.model.parameters()
            self.l2_tensors = self.model.l2_tensors()
            self.fmodel = self.model
        adam = {"lr": tc.lr, "betas": tuple(tc.betas), "eps": tc.eps}
        if s.mode == "graph":
            if not self.cuda:
                raise SettingError("graph needs a CUDA device")
            self.opt = torch.optim.Adam(self.params, **adam, fused=True, capturable=True)
        elif s.models == 1:
            self.opt = build_optimizer(self.model, tc, device)  # run_fold's optimiser
        else:
            self.opt = torch.optim.Adam(self.params, **adam, fused=True if self.cuda else None)
        self._setup_data(seq)
        self.k = 0
        if s.mode == "graph":
            self.static_idx = self.seq_dev[0].clone()
            self.graphed = fp.GraphedStep(
                lambda: self._step(self.static_idx), self.params, self.opt, warmup=3
            )

    # ---------------------------------------------------------------------------- batches
    def _setup_data(self, seq: torch.Tensor) -> None:
        s, dev = self.s, self.device
        pool = clip_pool(self.spec)
        self.y = pool["y"].to(dev)
        self.in_dtype = self.amp or torch.float32
        fmt = torch.channels_last_3d if s.channels_last else torch.contiguous_format
        self.fmt = fmt
        if not s.resident:
            host = host_pool(self.spec)
            self.host_a, self.host_b, self.host_y = host["a"], host["b"], pool["y"]
            self.seq_cpu = seq[:, 0]
            self.batch_fn = self._host_batch
            return
        if s.models == 1 and not s.pad8:
            n = self.spec.pool
            data = SimpleNamespace(global_clips=pool["a"].numpy(), region_clips=pool["b"].numpy())
            empty = np.zeros(0, dtype=np.int64)
            rows = {"train": np.arange(n), "val": empty, "test": empty}
            self.tensors = FoldTensors(
                data, rows, dev, scaling="fixed", channels_last=s.channels_last
            )
            self.seq_dev = seq[:, 0].to(dev)
            self.batch_fn = self._fold_batch
            return
        self.u8a = pool["a"].to(dev)
        self.u8b = pool["b"].to(dev)
        self.in_channels = 8 if s.pad8 else None
        if s.models == 1:
            self.seq_dev = seq[:, 0].to(dev)
            self.batch_fn = self._padded_batch
        else:
            self.seq_dev = seq.to(dev)
            self.batch_fn = self._stacked_batch

    def _host_batch(self, idx: torch.Tensor):
        xa = self.host_a.index_select(0, idx).to(self.device)
        xb = self.host_b.index_select(0, idx).to(self.device)
        y = self.host_y.index_select(0, idx).to(self.device)
        if self.s.channels_last:
            xa = xa.contiguous(memory_format=self.fmt)
            xb = xb.contiguous(memory_format=self.fmt)
        return xa, xb, y

    def _fold_batch(self, idx: torch.Tensor):
        xa, xb = self.tensors.model_inputs(*self.tensors.batch("train", idx))
        return xa, xb, self.y.index_select(0, idx)

    def _padded_batch(self, idx: torch.Tensor):
        kw = {"channels": self.in_channels, "dtype": self.in_dtype}
        cl = self.s.channels_last
        xa = fp.clips_to_input(self.u8a.index_select(0, idx), channels_last=cl, **kw)
        xb = fp.clips_to_input(self.u8b.index_select(0, idx), channels_last=cl, **kw)
        return xa, xb, self.y.index_select(0, idx)

    def _stacked_batch(self, idx: torch.Tensor):
        kw = {"channels": self.in_channels, "dtype": self.in_dtype}
        xa = fp.stacked_inputs(self.u8a, idx, **kw)
        xb = fp.stacked_inputs(self.u8b, idx, **kw)
        if not self.s.channels_last:
            xa, xb = xa.contiguous(), xb.contiguous()
        return xa, xb, self.y[idx]

    # ------------------------------------------------------------------------------- steps
    def _autocast(self):
        if self.amp is None or self.s.models > 1:  # stacked: explicit casts (see StackedModels)
            return contextlib.nullcontext()
        # the autocast weight cache must not outlive a captured graph
        cache = self.s.mode != "graph"
        return torch.autocast(self.device.type, dtype=self.amp, cache_enabled=cache)

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        xa, xb, y = self.batch_fn(idx)
        with self._autocast():
            logits = self.fmodel(xa, xb)
        if self.s.models > 1:
            loss, ce = fp.stacked_loss(logits, y, self.class_w, self.l2_tensors, self.l2)
        else:
            ce = weighted_ce(logits, y, self.class_w)
            reg = l2_penalty(self.l2_tensors, self.l2)
            loss = ce if reg is None else ce + reg
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return ce.detach()

    def step(self) -> torch.Tensor:
        """Train on the next batch; the weighted CE (per member) of that step, on the device."""
        k = self.k % self.seq_len
        self.k += 1
        if self.s.mode == "graph":
            self.static_idx.copy_(self.seq_dev[k])
            return self.graphed()
        if self.s.mode == "compile-ro":
            torch.compiler.cudagraph_mark_step_begin()  # one training iteration per step
        idx = self.seq_dev[k] if self.s.resident else self.seq_cpu[k]
        return self._step(idx)

    def trajectory(self, n: int) -> list[list[float]]:
        """CE of n steps from the start, (n, members)."""
        out = [self.step().clone() for _ in range(n)]
        return torch.stack(out).float().reshape(n, -1).cpu().tolist()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def timed(self, n: int) -> float:
        """Seconds for n steps (CUDA events on the device: they count idle gaps too)."""
        if not self.cuda:
            t0 = time.perf_counter()
            for _ in range(n):
                self.step()
            return time.perf_counter() - t0
        self.sync()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            self.step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


# --------------------------------------------------------------------------- measurements
def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def matmul_ceiling(device: torch.device) -> tuple[float, str]:
    """Measured matrix-product rate in TFLOP/s (median of timed products, random inputs)."""
    if device.type == "cuda":
        n, dtype, reps = 8192, torch.bfloat16, 10
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        times = []
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        del a, b
        _cleanup(device)
        label = f"bf16 matmul {n}³, median of {reps}"
    else:
        n, reps = 512, 5
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        label = f"CPU fp32 matmul {n}³, median of {reps} (not a GPU ceiling)"
    return 2 * n**3 / statistics.median(times) / 1e12, label


def flops_per_clip(spec: Spec, device: torch.device) -> float:
    """Forward + backward FLOPs of one baseline training step, per clip (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    s = Setting()
    runner = Runner(s, spec, device, check=True)
    with FlopCounterMode(display=False) as counter:
        runner.step()
    del runner
    _cleanup(device)
    return counter.get_total_flops() / s.clips_per_step


def check_trajectory(s: Setting, spec: Spec, device: torch.device, member: int = 0):
    """The row's own CE trajectory with dropout off (fp32 rows: TF32 off too)."""
    with backend_flags(benchmark=s.benchmark, strict_fp32=s.precision == "fp32"):
        runner = Runner(s, spec, device, check=True, member=member)
        traj = runner.trajectory(spec.check_steps)
    del runner
    _cleanup(device)
    return traj


def reference(spec: Spec, device: torch.device, batch: int, member: int, cache: dict) -> list:
    """The plain recipe's CE trajectory for one member (fp32, eager, host batches, TF32 off)."""
    key = (batch, member)
    if key not in cache:
        base = Setting(batch=batch)
        with backend_flags(benchmark=False, strict_fp32=True):
            runner = Runner(base, spec, device, check=True, member=member)
            cache[key] = [row[0] for row in runner.trajectory(spec.check_steps)]
        del runner
        _cleanup(device)
    return cache[key]


def compare(traj: list[list[float]], refs: list[list[float]], tol: float) -> tuple[bool, float]:
    """Max relative difference of each member's CE trajectory to its reference."""
    worst = 0.0
    for m, ref in enumerate(refs):
        for k, r in enumerate(ref):
            f = traj[k][m]
            if not (math.isfinite(f) and math.isfinite(r)):
                return False, float("nan")
            worst = max(worst, abs(f - r) / max(abs(r), 1e-12))
    return worst <= tol, worst


def local_timing(s: Setting, spec: Spec, device: torch.device) -> dict[str, Any]:
    cuda = device.type == "cuda"
    with backend_flags(benchmark=s.benchmark, strict_fp32=not s.tf32):
        _cleanup(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        runner = Runner(s, spec, device)
        for _ in range(spec.warmup):
            runner.step()
        runner.sync()
        setup = time.perf_counter() - t0
        n = spec.steps_for(s)
        windows = [runner.timed(n) for _ in range(spec.repeats)]
        mem = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else rss_mb()
        del runner
    _cleanup(device)
    rates = [n * s.clips_per_step / w for w in windows]
    med = statistics.median(rates)
    return {
        "clips_s": med,
        "spread": (max(rates) - min(rates)) / med if len(rates) > 1 else 0.0,
        "setup_s": setup,
        "mem_mb": mem,
        "steps": n,
        "windows_s": windows,
    }


# ------------------------------------------------------------------------------ packed rows
class PackedWorker:
    """One process of a packed row: its own model, data and CUDA context (a Ray actor or a
    torch.multiprocessing child)."""

    def __init__(self, setting: str, spec: Spec, rank: int, device_type: str, threads: int):
        if threads > 0:
            torch.set_num_threads(threads)
        self.s = Setting.parse(setting)
        self.spec = spec
        self.rank = rank
        self.device = torch.device(device_type)
        self.cuda = self.device.type == "cuda"

    def setup(self, check: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": os.getpid()}
        if check:
            out["check"] = check_trajectory(self.s, self.spec, self.device, member=self.rank)
        torch.backends.cudnn.benchmark = self.s.benchmark
        if not self.s.tf32:
            _set_tf32(_strict_state())
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        self.runner = Runner(self.s, self.spec, self.device, member=self.rank)
        for _ in range(self.spec.warmup):
            self.runner.step()
        self.runner.sync()
        out["setup_s"] = time.perf_counter() - t0
        return out

    def run(self, steps: int, repeats: int) -> dict[str, Any]:
        self.runner.sync()
        start = time.time()
        windows = [self.runner.timed(steps) for _ in range(repeats)]
        end = time.time()
        mem = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else rss_mb()
        return {
            "start": start,
            "end": end,
            "clips": steps * repeats * self.s.clips_per_step,
            "windows_s": windows,
            "mem_mb": mem,
        }


def _mp_worker(rank, setting, spec, device_type, threads, check, steps, repeats, barrier, queue):
    try:
        worker = PackedWorker(setting, spec, rank, device_type, threads)
        queue.put(("setup", rank, worker.setup(check)))
        barrier.wait(timeout=900)
        queue.put(("run", rank, worker.run(steps, repeats)))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put(("error", rank, traceback.format_exc()))
        with contextlib.suppress(Exception):
            barrier.abort()


def _packed_mp(inner: Setting, spec: Spec, n: int, device, threads: int, check: bool, steps: int):
    ctx = torch.multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    queue = ctx.Queue()
    args = (inner.name, spec, device.type, threads)
    procs = [
        ctx.Process(
            target=_mp_worker,
            args=(rank, *args, check and rank == 0, steps, spec.repeats, barrier, queue),
            daemon=True,
        )
        for rank in range(n)
    ]
    for p in procs:
        p.start()

    def collect(kind: str) -> list[dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        while len(got) < n:
            what, rank, payload = queue.get(timeout=900)
            if what == "error":
                with contextlib.suppress(Exception):
                    barrier.abort()
                raise RuntimeError(f"packed process {rank} failed:\n{payload}")
            got[rank] = payload
        return [got[r] for r in range(n)]

    try:
        setups = collect("setup")
        barrier.wait(timeout=900)
        runs = collect("run")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return setups, runs


_RAY = {"started": False}


def ray_start(device: torch.device, cpus: int = 0) -> float:
    """Start a local Ray once per harness process (reused by later rows); seconds it took.
    Workers get the repository on PYTHONPATH so they import bench.throughput by name."""
    import ray

    if ray.is_initialized():
        return 0.0
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    t0 = time.perf_counter()
    ray.init(
        num_cpus=max(cpus, os.cpu_count() or 1),
        num_gpus=1 if device.type == "cuda" else 0,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
    )
    _RAY["started"] = True
    return time.perf_counter() - t0


def ray_stop() -> None:
    if _RAY["started"]:
        import ray

        ray.shutdown()
        _RAY["started"] = False


def _packed_ray(inner: Setting, spec: Spec, n: int, device, threads: int, check: bool, steps: int):
    import ray

    ray_start(device, cpus=n)
    options: dict[str, Any] = {"num_cpus": 1}
    if device.type == "cuda":
        options["num_gpus"] = math.floor(1e4 / n) / 1e4
    actor = ray.remote(PackedWorker)
    workers = [
        actor.options(**options).remote(inner.name, spec, rank, device.type, threads)
        for rank in range(n)
    ]
    try:
        setups = ray.get([w.setup.remote(check and r == 0) for r, w in enumerate(workers)])
        runs = ray.get([w.run.remote(steps, spec.repeats) for w in workers])
    finally:
        for w in workers:
            ray.kill(w)
    return setups, runs


def packed_timing(s: Setting, spec: Spec, device, *, check: bool, use_ray: bool) -> dict:
    inner = replace(s, procs=1)
    n = s.procs
    threads = 0 if device.type == "cuda" else max(1, (os.cpu_count() or 1) // n)
    steps = spec.steps_for(inner)
    if use_ray:
        try:
            ray_start(device, cpus=n)
        except Exception as exc:  # noqa: BLE001 - fall back rather than lose the row
            print(f"ray did not start ({exc}); packing with torch.multiprocessing", flush=True)
            use_ray = False
    runner = _packed_ray if use_ray else _packed_mp
    setups, runs = runner(inner, spec, n, device, threads, check, steps)
    clips = sum(r["clips"] for r in runs)
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    mems = [r["mem_mb"] for r in runs]
    return {
        "clips_s": clips / wall,
        "spread": None,
        "setup_s": max(x["setup_s"] for x in setups),
        "mem_mb": sum(mems) if all(m is not None for m in mems) else None,
        "steps": steps,
        "windows_s": [r["windows_s"] for r in runs],
        "check_traj": setups[0].get("check"),
        "packing": "ray" if use_ray else "torch.multiprocessing",
    }


# --------------------------------------------------------------------------------- the matrix
def measure_row(
    s: Setting, spec: Spec, device: torch.device, refs: dict, *, use_ray: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setting": s.name,
        "batch": s.batch,
        "models": s.models,
        "procs": s.procs,
        "clips_per_step": s.clips_per_step,
        "optim": s.same_optimisation,
        "tol": s.tolerance,
    }
    t0 = time.perf_counter()
    try:
        do_check = spec.check_steps > 0
        if s.procs > 1:
            timing = packed_timing(s, spec, device, check=do_check, use_ray=use_ray)
            traj = timing.pop("check_traj")
            members = 1
        else:
            traj = check_trajectory(s, spec, device) if do_check else None
            timing = local_timing(s, spec, device)
            members = s.models
        row.update(timing)
        if traj is not None:
            ref = [reference(spec, device, s.batch, m, refs) for m in range(members)]
            ok, worst = compare(traj, ref, s.tolerance)
            row["max_rel_diff"] = worst
            row["check"] = "ok" if ok else "FAIL"
        else:
            row["check"] = "-"
    except Exception as exc:  # noqa: BLE001 - one failing row must not end the run
        row["check"] = "ERROR"
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        _cleanup(device)
    row["seconds"] = time.perf_counter() - t0
    return row


def finish_row(row: dict[str, Any], meta: dict[str, Any], base_rate: float | None) -> None:
    rate = row.get("clips_s")
    if rate is None:
        return
    row["tflops"] = rate * meta["flops_per_clip"] / 1e12
    row["frac_ceiling"] = row["tflops"] / meta["ceiling_tflops"]
    row["speedup"] = rate / base_rate if base_rate else None


COLUMNS = [
    ("setting", "setting", 36),
    ("batch", "batch", 5),
    ("clips/s", "clips_s", 9),
    ("±%", "spread", 5),
    ("TFLOP/s", "tflops", 8),
    ("%ceil", "frac_ceiling", 6),
    ("mem MB", "mem_mb", 8),
    ("speed-up", "speedup", 8),
    ("check", "check", 20),
    ("optim", "optim", 13),
    ("setup s", "setup_s", 7),
]


def _cell(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if key == "check":
        if v == "ERROR":
            return "ERROR"
        if "max_rel_diff" in row:
            return f"{v} {row['max_rel_diff']:.1e}/{row['tol']:.0e}"
        return str(v or "-")
    if v is None:
        return "-"
    if key == "clips_s":
        return f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    if key == "spread":
        return f"{100 * v:.0f}"
    if key == "frac_ceiling":
        return f"{100 * v:.2f}"
    if key == "tflops":
        return f"{v:.3g}"
    if key == "speedup":
        return f"{v:.2f}×"
    if key in ("mem_mb", "setup_s"):
        return f"{v:.0f}" if key == "mem_mb" else f"{v:.1f}"
    if key == "batch":
        extra = f"×{row['models']}m" if row.get("models", 1) > 1 else ""
        extra += f"×{row['procs']}p" if row.get("procs", 1) > 1 else ""
        return f"{v}{extra}"
    return str(v)


def format_line(row: dict[str, Any]) -> str:
    cells = [_cell(row, key).ljust(width) for _, key, width in COLUMNS]
    line = " ".join(cells).rstrip()
    if row.get("error"):
        line += f"   {row['error'].splitlines()[0][:160]}"
    return line


def header_line() -> str:
    return " ".join(title.ljust(width) for title, _, width in COLUMNS).rstrip()


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(t for t, _, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in rows:
        cells = [_cell(row, key) for _, key, _ in COLUMNS]
        if row.get("error"):
            cells[COLUMNS.index(("check", "check", 20))] = "ERROR: " + row["error"].splitlines()[0][
                :120
            ].replace("|", "/")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(result: dict[str, Any], title: str = "Throughput") -> str:
    meta = result.get("meta", {})
    out = [f"## {title}", ""]
    keys = [
        "date",
        "device",
        "torch",
        "cuda",
        "cudnn",
        "config",
        "params",
        "flops_per_clip",
        "ceiling",
        "tf32",
        "steps",
        "packing",
        "git",
    ]
    for key in keys:
        if key in meta:
            value = meta[key]
            if key == "flops_per_clip":
                value = f"{value / 1e9:.3g} GFLOP (forward + backward, per clip)"
            if key == "ceiling":
                value = f"{meta['ceiling_tflops']:.1f} TFLOP/s ({value})"
            out.append(f"- {key}: {value}")
    if result.get("rows"):
        out += ["", markdown_table(result["rows"])]
    skipped = result.get("skipped")
    if skipped:
        out += ["", f"Skipped (time budget): {', '.join(skipped)}"]
    if result.get("e2e"):
        out += ["", render_e2e(result["e2e"])]
    return "\n".join(out) + "\n"


def write_outputs(out: Path | None, tag: str, result: dict[str, Any]) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{tag}.md").write_text(render_markdown(result, title=tag))


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


def run_matrix(args: argparse.Namespace, spec: Spec, device: torch.device, result: dict) -> None:
    settings = expand_settings(args.settings)
    meta = result["meta"]
    use_ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    if any(s.procs > 1 for s in settings):
        share = "1/N GPU" if device.type == "cuda" else "one CPU"
        meta["packing"] = f"ray ({share} per process)" if use_ray else "torch.multiprocessing"
    t_start = time.perf_counter()
    ceiling, label = matmul_ceiling(device)
    meta["ceiling_tflops"], meta["ceiling"] = ceiling, label
    meta["flops_per_clip"] = flops_per_clip(spec, device)
    print(
        f"# {meta['device']} | torch {meta['torch']} | {meta['config']}\n"
        f"# ceiling {ceiling:.1f} TFLOP/s ({label}); "
        f"{meta['flops_per_clip'] / 1e9:.3g} GFLOP per clip (fwd+bwd)",
        flush=True,
    )
    print(header_line(), flush=True)
    rows: list[dict[str, Any]] = result["rows"]
    skipped: list[str] = result["skipped"]
    refs: dict = {}
    base_rate: float | None = None
    last, last_procs = 0.0, 1
    for s in settings:
        elapsed = time.perf_counter() - t_start
        estimate = last * max(1.0, s.procs / last_procs)  # more processes start slower
        over = elapsed >= args.time_budget or elapsed + estimate > args.time_budget
        if args.time_budget and over and s != Setting():  # the baseline always runs
            skipped.append(s.name)
            print(f"{s.name}: skipped (time budget {args.time_budget:.0f} s)", flush=True)
            continue
        row = measure_row(s, spec, device, refs, use_ray=use_ray)
        if s == Setting() and row.get("clips_s"):
            base_rate = row["clips_s"]
        finish_row(row, meta, base_rate)
        rows.append(row)
        last, last_procs = row["seconds"], s.procs
        print(format_line(row), flush=True)
        write_outputs(args.out, args.tag, result)
    ray_stop()
    print("", flush=True)
    print(markdown_table(rows), flush=True)


# ------------------------------------------------------------------------------------ e2e
def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start)
    except (OSError, ValueError, IndexError):
        return None


def e2e_data(cfg: Any, clips: int, subjects: int, seed: int, mode: str):
    """A PreparedData-like object and one LOSO fold (test = subject 0).

    `memory`: random uint8 clips made here (no decord/av: works on a bare GPU image);
    `prepare`: mer.data.cache.prepare_data of a synthetic casme2-layout dataset (needs the media
    stack; the first call renders and caches it)."""
    import pandas as pd

    from mer.protocol import Fold

    if mode == "prepare":
        from mer.data.cache import prepare_data

        data = prepare_data(cfg.data, progress=False)
        samples = data.samples
    else:
        t, h = cfg.data.frames.count, cfg.data.size
        g = torch.Generator().manual_seed(seed)
        shape = (clips, t, h, h, cfg.model.in_channels)
        subject = [f"synthetic/s{i % subjects:02d}" for i in range(clips)]
        samples = pd.DataFrame(
            {
                "sample_id": [f"{s}/c{i:03d}" for i, s in enumerate(subject)],
                "dataset": "synthetic",
                "subject": subject,
                "clip": [f"c{i:03d}" for i in range(clips)],
                "label": (np.arange(clips) % cfg.model.num_classes).astype(np.int64),
            }
        )
        data = SimpleNamespace(
            samples=samples,
            class_names=["negative", "positive", "surprise"][: cfg.model.num_classes],
            global_clips=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).numpy(),
            region_clips=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).numpy(),
            key="bench-memory",
            path=None,
            oracle_input=False,
        )
    subj = samples["subject"].to_numpy()
    first = sorted(set(subj))[0]
    test = np.flatnonzero(subj == first).astype(np.int64)
    train = np.flatnonzero(subj != first).astype(np.int64)
    fold = Fold(first, 0, (first,), train, np.zeros(0, np.int64), test)
    return data, fold


def e2e_config(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from mer.config import apply_overrides

    t, h, _ = TINY_SHAPE if args.tiny else PAPER_SHAPE
    model: dict[str, Any] = {"preset": "casme2", **(TINY_MODEL if args.tiny else {})}
    raw: dict[str, Any] = {
        "name": "bench-e2e",
        "data": {
            "dataset": "synthetic",
            "size": h,
            "frames": {"count": t},
            "synthetic": {"layout": "casme2", "size": max(h, 32), "frames": max(t + 4, 24)},
        },
        "model": model,
        "train": {"epochs": args.e2e_epochs, "device": device.type},
    }
    return apply_overrides(raw, list(args.e2e_set))


def run_e2e(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """One fold through mer.train.run_fold, timed phase by phase."""
    startup = process_age()
    t0 = time.perf_counter()
    from mer.config import from_dict
    from mer.predlog import save_fold_result
    from mer.train import run_fold
    from mer.training.runtime import resolve_runtime

    t_imports = time.perf_counter() - t0
    raw = e2e_config(args, device)
    cfg = from_dict(raw)
    clips = args.e2e_clips or (24 if args.tiny else 145)
    subjects = args.e2e_subjects or (4 if args.tiny else 24)
    t0 = time.perf_counter()
    data, fold = e2e_data(cfg, clips, subjects, args.seed, args.e2e_data)
    t_data = time.perf_counter() - t0
    runtime = resolve_runtime(cfg.train)
    result = run_fold(cfg, data, fold, args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mer-bench-") as tmp:
        save_fold_result(result, tmp)
    t_report = time.perf_counter() - t0
    tm = result.timings
    phases = {
        "startup (interpreter + imports before the harness)": startup,
        "imports (mer.train, pandas)": t_imports,
        f"data ({args.e2e_data})": t_data,
        "run_fold setup (model, optimiser)": tm["setup"],
        "cache to device": tm["to_device"],
        "train": tm["train"],
        "predict": tm["predict"],
        "report (prediction logs)": t_report,
    }
    total = sum(v for v in phases.values() if v is not None)
    other = total - tm["train"]
    epoch_s = [float(r["seconds"]) for r in result.history]
    rest = epoch_s[1:] or epoch_s
    train_200 = epoch_s[0] + 199 * statistics.median(rest)
    out: dict[str, Any] = {
        "epochs": len(epoch_s),
        "train_clips": int(len(fold.train)),
        "test_clips": int(len(fold.test)),
        "precision": "bf16" if runtime.amp_dtype is not None else "fp32",
        "channels_last": runtime.channels_last,
        "batch": cfg.train.batch_size,
        "phases_s": phases,
        "total_s": total,
        "non_training_s": other,
        "non_training_share": other / total,
        "epoch_s_first": epoch_s[0],
        "epoch_s_median_rest": statistics.median(rest),
        "train_clips_s": len(fold.train) / statistics.median(rest),
        "extrapolated_200_epochs": {
            "train_s": train_200,
            "non_training_share": other / (other + train_200),
        },
        "overrides": list(args.e2e_set),
    }
    if args.e2e_ray:
        try:
            out["ray"] = run_e2e_ray(raw, data, fold, device)
        except Exception as exc:  # noqa: BLE001 - optional part
            out["ray"] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            print(traceback.format_exc(), file=sys.stderr, flush=True)
    return out


def e2e_trainable(config: dict, data: Any = None, fold: Any = None, raw: dict | None = None):
    """A Tune function trainable running one fold the way the sweep does (mer.sweep.trial when
    it exists, else run_fold + one report)."""
    from ray import tune

    from mer.config import from_dict

    cfg = from_dict(raw)
    try:
        from mer.experiment.plan import TrialSpec
        from mer.sweep.trial import TuneReporter, execute_trial
    except ImportError:
        from mer.train import run_fold

        result = run_fold(cfg, data, fold, 0)
        tune.report({"timings": dict(result.timings), "mer_final": True})
        return
    execute_trial(TrialSpec("bench", fold.name, 0), cfg, data, fold, TuneReporter())


def run_e2e_ray(raw: dict, data: Any, fold: Any, device: torch.device) -> dict[str, Any]:
    from ray import tune

    t_init = ray_start(device, cpus=2)
    try:
        trainable = tune.with_parameters(e2e_trainable, data=data, fold=fold, raw=raw)
        resources = {"cpu": 1, "gpu": 1 if device.type == "cuda" else 0}
        with tempfile.TemporaryDirectory(prefix="mer-bench-tune-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(trainable, resources),
                tune_config=tune.TuneConfig(num_samples=1),
                run_config=tune.RunConfig(name="bench_e2e", storage_path=storage, verbose=0),
            )
            t0 = time.perf_counter()
            grid = tuner.fit()
            t_fit = time.perf_counter() - t0
            res = grid[0]
            metrics = dict(res.metrics or {})
            error = str(res.error)[:300] if res.error else None
    finally:
        ray_stop()
    timings = metrics.get("timings")
    if timings is None:
        timings = {
            k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("timings/")
        } or None
    out: dict[str, Any] = {"ray_init_s": t_init, "tuner_fit_s": t_fit, "error": error}
    out["via"] = "mer.sweep.trial.execute_trial" if "trial" in metrics else "run_fold"
    if timings:
        out["trial_run_fold_total_s"] = timings.get("total")
        out["trial_train_s"] = timings.get("train")
        out["tune_overhead_s"] = t_fit - float(timings.get("total") or 0.0)
    return out


def render_e2e(e2e: dict[str, Any]) -> str:
    lines = [
        "### One trial end to end (mer.train.run_fold)",
        "",
        f"{e2e['epochs']} epochs of {e2e['train_clips']} training clips, {e2e['test_clips']} test"
        f" clips, batch {e2e['batch']}, {e2e['precision']}, channels_last "
        f"{e2e['channels_last']}; overrides: {', '.join(e2e['overrides']) or 'none'}",
        "",
        "| phase | seconds | share |",
        "|---|---|---|",
    ]
    total = e2e["total_s"]
    for name, sec in e2e["phases_s"].items():
        if sec is None:
            lines.append(f"| {name} | - | - |")
        else:
            lines.append(f"| {name} | {sec:.2f} | {100 * sec / total:.1f} % |")
    lines.append(f"| total | {total:.2f} | 100 % |")
    ex = e2e["extrapolated_200_epochs"]
    lines += [
        "",
        f"Not training: {e2e['non_training_s']:.1f} s = {100 * e2e['non_training_share']:.1f} % of"
        f" this run. Epochs: first {e2e['epoch_s_first']:.2f} s (warm-up), then median "
        f"{e2e['epoch_s_median_rest']:.3f} s ({e2e['train_clips_s']:.0f} clips/s). Extrapolated to"
        f" 200 epochs: training {ex['train_s']:.0f} s, not training "
        f"{100 * ex['non_training_share']:.1f} %.",
    ]
    ray = e2e.get("ray")
    if ray:
        if ray.get("error") and "tuner_fit_s" not in ray:
            lines += ["", f"Ray Tune trial: failed ({ray['error']})"]
        else:
            lines += [
                "",
                f"Ray Tune, one trial via {ray.get('via')}: ray.init {ray['ray_init_s']:.1f} s, "
                f"Tuner.fit {ray['tuner_fit_s']:.1f} s, of which run_fold "
                f"{ray.get('trial_run_fold_total_s') or float('nan'):.1f} s (Tune overhead "
                f"{ray.get('tune_overhead_s') or float('nan'):.1f} s)"
                + (f"; error: {ray['error']}" if ray.get("error") else ""),
            ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- command
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/throughput.py",
        description="Training throughput of the paper model over a matrix of settings.",
    )
    p.add_argument(
        "--settings",
        action="append",
        default=None,
        help="comma-separated settings ('+'-joined tokens) and @groups; see --list",
    )
    p.add_argument("--list", action="store_true", help="print the tokens and groups, then exit")
    p.add_argument("--tiny", action="store_true", help="small model and 8×32×32 clips (CPU smoke)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per window (batch-8 units)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="timed windows per row (median)")
    p.add_argument("--check-steps", type=int, default=5, help="0 = no equivalence checks")
    p.add_argument("--pool", type=int, default=0, help="clips in the data pool (default 64/16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds; skip rows after it")
    p.add_argument("--no-ray", action="store_true", help="packed rows via torch.multiprocessing")
    p.add_argument("--out", type=Path, default=None, help="write TAG.md and TAG.json here")
    p.add_argument("--tag", default="throughput")
    p.add_argument("--e2e", action="store_true", help="time one real trial (run_fold)")
    p.add_argument("--e2e-epochs", type=int, default=5)
    p.add_argument("--e2e-clips", type=int, default=0, help="default 145 (tiny: 24)")
    p.add_argument("--e2e-subjects", type=int, default=0, help="default 24 (tiny: 4)")
    p.add_argument("--e2e-data", choices=["memory", "prepare"], default="memory")
    p.add_argument("--e2e-set", action="append", default=[], help="KEY=VALUE config override")
    p.add_argument("--e2e-ray", action="store_true", help="also time it as one Ray Tune trial")
    p.add_argument("--merge", nargs="+", type=Path, default=None, help="JSON results to merge")
    args = p.parse_args(argv)
    if args.settings is not None:
        args.settings = [x for item in args.settings for x in item.split(",")]
    return args


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def summary_markdown(parts: dict[str, dict[str, Any]], top: int = 8) -> str:
    """Across parts: each part's baseline (run-to-run noise) and the fastest checked rows."""
    lines = ["## Summary", ""]
    bases = [
        f"{name} {r['clips_s']:.1f}"
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r["setting"] == "baseline" and r.get("clips_s")
    ]
    if bases:
        lines.append(
            f"Baseline clips/s in each part (each part's speed-ups use its own): "
            f"{', '.join(bases)}."
        )
    ranked = [
        (name, r)
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r.get("speedup") and r.get("check") in ("ok", "-")
    ]
    ranked.sort(key=lambda x: x[1]["speedup"], reverse=True)
    for title, pick in (
        ("same optimisation as the paper (batch 8)", [x for x in ranked if x[1]["optim"] == "yes"]),
        ("any batch", ranked),
    ):
        if not pick:
            continue
        lines += [
            "",
            f"Fastest rows, {title}:",
            "",
            "| part | setting | clips/s | speed-up | TFLOP/s | mem MB | check |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in pick[:top]:
            lines.append(
                f"| {name} | {r['setting']} | {_cell(r, 'clips_s')} | {_cell(r, 'speedup')} | "
                f"{_cell(r, 'tflops')} | {_cell(r, 'mem_mb')} | {_cell(r, 'check')} |"
            )
    failed = [
        f"{name}/{r['setting']} ({r['check']})"
        for name, part in parts.items()
        for r in part.get("rows", [])
        if r.get("check") in ("FAIL", "ERROR")
    ]
    if failed:
        lines += ["", f"Failed or errored rows: {', '.join(failed)}."]
    return "\n".join(lines) + "\n"


def merge(paths: list[Path], out: Path | None, tag: str) -> dict[str, Any]:
    parts = {}
    for path in paths:
        if path.exists():
            parts[path.stem] = json.loads(path.read_text())
        else:
            print(f"{path}: missing (that part did not run or was cut)", flush=True)
    md = summary_markdown(parts) + "\n"
    md += "\n".join(render_markdown(part, title=name) for name, part in parts.items())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{tag}.md").write_text(md)
        (out / f"{tag}.json").write_text(json.dumps({"parts": parts}, indent=1) + "\n")
    print(md, flush=True)
    return {"parts": parts}


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the harness; returns {"meta", "rows", "skipped", "e2e"} (also written under --out)."""
    args = parse_args(argv)
    if args.list:
        for tok, text in TOKENS.items():
            print(f"{tok:11} {text}")
        for name, items in GROUPS.items():
            print(f"@{name}: {', '.join(items)}")
        return {}
    if args.merge:
        return merge(args.merge, args.out, args.tag)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers (tests) keep their setting


def _run(args: argparse.Namespace) -> dict[str, Any]:
    device = pick_device(args.device)
    spec = make_spec(args)
    t, h, w = spec.shape
    params = sum(
        p.numel() for p in build_model(spec.model_cfg, input_shape=spec.shape).parameters()
    )
    meta = describe_device(device)
    meta.update(
        {
            "config": f"{'tiny' if spec.tiny else 'casme2 preset'}, clips {t}×{h}×{w}×3",
            "params": params,
            "steps": f"{spec.steps} per window (batch-8 units), {spec.repeats} windows, warm-up "
            f"{spec.warmup}, checks {spec.check_steps} steps, pool {spec.pool} clips",
            "spec": {k: v for k, v in asdict(spec).items() if k != "model_cfg"},
        }
    )
    result: dict[str, Any] = {"meta": meta, "rows": [], "skipped": [], "e2e": None}
    if args.settings is None and not args.e2e:
        args.settings = ["@cpu"] if device.type == "cpu" else ["@main", "@stack"]
    if args.settings:
        run_matrix(args, spec, device, result)
    if args.e2e:
        result["e2e"] = run_e2e(args, device)
        print(render_e2e(result["e2e"]), flush=True)
    write_outputs(args.out, args.tag, result)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(argv)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # run as bench.throughput, so worker processes (spawn, Ray) import the same classes by name
    from bench import throughput as _self

    sys.exit(_self.main())
