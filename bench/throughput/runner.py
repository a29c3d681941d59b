"""One setting's training loop: its model(s), optimiser and batch source (`Runner`), built the
way the setting says, stepping exactly as run_fold does (loss, L2, Adam)."""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from bench.throughput.settings import Setting, SettingError
from bench.throughput.spec import Spec, clip_pool, host_pool, index_sequence, no_dropout
from bench.throughput.timing import elapsed
from mer.config import ModelConfig, TrainConfig
from mer.models import build_model
from mer.training import fastpath as fp
from mer.training.fold_data import FoldTensors
from mer.training.loss import l2_parameters, l2_penalty, weighted_ce
from mer.training.optim import build_optimizer


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

        def steps() -> None:
            for _ in range(n):
                self.step()

        return elapsed(steps, self.device)


def start_runner(
    s: Setting, spec: Spec, device: torch.device, *, member: int = 0
) -> tuple[Runner, float]:
    """A runner built and warmed up, with peak memory counted from its start; the seconds that
    took (build + compile/capture + warm-up: the `setup s` column)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    runner = Runner(s, spec, device, member=member)
    for _ in range(spec.warmup):
        runner.step()
    runner.sync()
    return runner, time.perf_counter() - t0
