"""The epoch loop of one fold: train, evaluate on schedule, keep the selected state, checkpoint.

Per step the only host work is indexing: batches come from device-resident uint8 tensors, running
sums stay on the device and are read once per epoch (one synchronisation per epoch, not per step).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mer.config import ExperimentConfig
from mer.errors import ConfigError, MerError
from mer.metrics import megc_scores
from mer.training import augment as augment_mod
from mer.training.fold_data import FoldTensors, LabelGuard
from mer.training.loss import l2_parameters, l2_penalty, weighted_ce
from mer.training.optim import build_optimizer, build_scheduler
from mer.training.runtime import Runtime, rng_state, set_rng_state, to_cpu
from mer.training.selection import Selector

CHECKPOINT_FORMAT = 1
EVAL_BATCH = 32


class NonFiniteLoss(MerError):
    """The training loss became NaN or infinite (`train.on_nan: error`): the fold stops."""


def _scores(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> dict[str, float]:
    return megc_scores(y_true, probs.argmax(1), num_classes)


class Trainer:
    """Owns the model, optimiser, schedule, RNG and history of one fold's training."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        model: nn.Module,
        tensors: FoldTensors,
        guard: LabelGuard,
        runtime: Runtime,
        gen: torch.Generator,
        class_weights: np.ndarray | None,
        *,
        fold_name: str,
        seed: int,
    ):
        self.cfg = cfg
        self.train_cfg = cfg.train
        self.model = model
        self.fmodel = torch.compile(model) if cfg.train.compile else model
        self.tensors = tensors
        self.guard = guard
        self.runtime = runtime
        self.gen = gen
        self.fold_name = fold_name
        self.seed = seed
        self.num_classes = cfg.model.num_classes
        device = runtime.device
        self.optimizer = build_optimizer(model, cfg.train, device)
        self.scheduler = build_scheduler(self.optimizer, cfg.train)
        self.l2_named = l2_parameters(model) if cfg.train.l2 > 0 else []
        if cfg.train.l2 > 0 and not self.l2_named:
            raise ConfigError(
                f"train.l2 = {cfg.train.l2}: the model exposes no kernels to regularise "
                "(l2_parameters() is empty); set train.l2: 0"
            )
        self.l2_tensors = [p for _, p in self.l2_named]
        self.weights = (
            None
            if class_weights is None
            else torch.as_tensor(class_weights, dtype=torch.float32, device=device)
        )
        self.y_train = torch.as_tensor(guard.get("train"), device=device)
        self.y_val = guard.get("val") if tensors.sizes["val"] else None
        self.selector = Selector(
            cfg.protocol.selection,
            eval_every=cfg.train.eval_every,
            epochs=cfg.train.epochs,
            has_val=self.y_val is not None,
        )
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # epochs completed
        self.augment = augment_mod.augment_enabled(cfg.train.augment)

    # ------------------------------------------------------------------------------- training
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        model, opt, t = self.model, self.optimizer, self.tensors
        model.train()
        device = self.runtime.device
        n = t.sizes["train"]
        bs = self.train_cfg.batch_size
        perm = torch.randperm(n, generator=self.gen).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        ce_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        lr = float(opt.param_groups[0]["lr"])
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            xa, xb = t.batch("train", idx)
            if self.augment:
                xa, xb = augment_mod.augment_pair(xa, xb, self.train_cfg.augment, self.gen)
            xa, xb = t.model_inputs(xa, xb)
            y = self.y_train.index_select(0, idx)
            with self.runtime.autocast():
                logits = self.fmodel(xa, xb)
            ce = weighted_ce(logits, y, self.weights)
            reg = l2_penalty(self.l2_tensors, self.train_cfg.l2)
            loss = ce if reg is None else ce + reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            k = idx.numel()
            loss_sum += loss.detach().double() * k
            ce_sum += ce.detach().double() * k
            correct += (logits.detach().argmax(1) == y).sum()
        if self.scheduler is not None:
            self.scheduler.step()
        totals = torch.stack([loss_sum, ce_sum, correct.double()]).tolist()
        if self.train_cfg.on_nan == "error" and not math.isfinite(totals[0]):
            raise NonFiniteLoss(
                f"train.on_nan: error: the training loss of fold {self.fold_name} (seed "
                f"{self.seed}) is {totals[0] / n} at epoch {epoch} (lr {lr:g}); the fold stops "
                "here and its variant is not scored. Lower train.lr, check the inputs, or set "
                "train.on_nan: ignore to train on"
            )
        return {
            "epoch": epoch,
            "loss": totals[0] / n,
            "ce": totals[1] / n,
            "lr": lr,
            "train_acc": totals[2] / n,
        }

    # ----------------------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, split: str) -> np.ndarray:
        """Softmax probabilities (n, K) float32 for `split`'s clips in row order, eval mode."""
        self.guard.events.append(f"predict:{split}")
        t = self.tensors
        n = t.sizes[split]
        was_training = self.model.training
        self.model.eval()
        out = []
        bs = max(self.train_cfg.batch_size, EVAL_BATCH)
        for start in range(0, n, bs):
            idx = torch.arange(start, min(n, start + bs), device=self.runtime.device)
            xa, xb = t.model_inputs(*t.batch(split, idx))
            with self.runtime.autocast():
                logits = self.fmodel(xa, xb)
            out.append(torch.softmax(logits.float(), dim=1))
        self.model.train(was_training)
        if not out:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return torch.cat(out).cpu().numpy()

    def _evaluate(self, split: str, labels: np.ndarray) -> dict[str, float]:
        probs = self.predict(split)
        return _scores(labels, probs, self.num_classes)

    def _model_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # ------------------------------------------------------------------------------------ fit
    def fit(self, hooks: Any, progress: bool = False) -> bool:
        """Train up to `train.epochs` (from `self.epoch`); True if `should_stop` ended it early."""
        epochs = self.train_cfg.epochs
        every = self.train_cfg.checkpoint_every
        stopped = False
        bar = tqdm(
            total=epochs,
            initial=self.epoch,
            disable=not progress,
            desc=self.fold_name,
            unit="ep",
            leave=True,
            dynamic_ncols=True,
        )
        y_test = self.guard.get("test") if self.selector.eval_test(1) else None
        try:
            for epoch in range(self.epoch + 1, epochs + 1):
                t0 = time.perf_counter()
                rec = self.train_epoch(epoch)
                if self.selector.eval_val(epoch):
                    rec.update(
                        {f"val_{k}": v for k, v in self._evaluate("val", self.y_val).items()}
                    )
                if y_test is not None:
                    rec.update({f"test_{k}": v for k, v in self._evaluate("test", y_test).items()})
                self.selector.consider(epoch, rec, self._model_state)
                self.runtime.sync()
                rec["seconds"] = time.perf_counter() - t0
                self.history.append(rec)
                self.epoch = epoch
                rec["checkpoint"] = bool(hooks.save_checkpoint and every and epoch % every == 0)
                if rec["checkpoint"]:
                    hooks.save_checkpoint(self.checkpoint())
                if hooks.on_epoch:
                    hooks.on_epoch(dict(rec))
                post = {"loss": f"{rec['loss']:.4f}", "lr": f"{rec['lr']:.2e}"}
                if "val_uf1" in rec:
                    post["val_uf1"] = f"{rec['val_uf1']:.3f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
                if hooks.should_stop and hooks.should_stop():
                    stopped = True
                    break
        finally:
            bar.close()
        return stopped

    def use_selected(self) -> int:
        """Load the selected epoch's weights into the model; return that epoch."""
        if self.selector.best_state is not None:
            self.model.load_state_dict(self.selector.best_state)
            return int(self.selector.best_epoch)
        return self.epoch

    # ---------------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue exactly: a CPU copy, loadable with weights_only=True."""
        rng = rng_state(self.gen)
        np_state = rng["numpy"]
        rng["numpy"] = (
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        )
        return to_cpu(
            {
                "format": CHECKPOINT_FORMAT,
                "fold": self.fold_name,
                "seed": self.seed,
                "selection": self.selector.mode,
                "epoch": self.epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rng": rng,
                "history": [dict(r) for r in self.history],
                "best": self.selector.state_dict(),
            }
        )

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a `checkpoint()` of the same fold, seed and selection mode."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}"
            )
        for key, mine in (
            ("fold", self.fold_name),
            ("seed", self.seed),
            ("selection", self.selector.mode),
        ):
            if state.get(key) != mine:
                raise ValueError(
                    f"checkpoint is for {key} {state.get(key)!r}, this run has {mine!r}"
                )
        device = self.runtime.device
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        best = state.get("best")
        if best is not None:
            best = dict(best, model={k: v.to(device) for k, v in best["model"].items()})
        self.selector.load_state_dict(best)
        self.history = [dict(r) for r in state["history"]]
        self.epoch = int(state["epoch"])
        rng = dict(state["rng"])
        np_state = rng["numpy"]
        rng["numpy"] = (
            np_state[0],
            np.asarray(np_state[1], dtype=np.uint32),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        )
        set_rng_state(rng, self.gen)
