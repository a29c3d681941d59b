"""Train and evaluate one fold: `run_fold(cfg, data, fold, seed) -> FoldResult`.

Pure core: no Ray, no W&B. The sweep runner observes and checkpoints a fold through `FoldHooks`;
`mer train` calls `run_fold` directly, so a fold can be debugged under pdb.

Validity (PROTOCOL.md §4): the test subject's labels are only read after the final test
prediction (enforced by `LabelGuard`), except under `protocol.selection: oracle_test`, which
reproduces the paper's test-set epoch selection and flags every result oracle. AU regions chosen
from ground-truth annotation (`data.oracle_input`) flag results oracle as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mer import models
from mer.config import ExperimentConfig
from mer.errors import ConfigError, DataError
from mer.metrics import megc_scores
from mer.predlog import prediction_table
from mer.training import fastpath
from mer.training.fold_data import FoldTensors, LabelGuard
from mer.training.loop import Trainer
from mer.training.loss import resolve_class_weights
from mer.training.runtime import resolve_runtime, seed_everything

log = logging.getLogger(__name__)

__all__ = ["FoldHooks", "FoldResult", "run_fold"]


@dataclass
class FoldHooks:
    """How a caller (e.g. a Ray trial) observes and checkpoints a fold without run_fold knowing it.

    Per epoch, in this order: `save_checkpoint(state)` when the epoch is a multiple of
    `train.checkpoint_every` (so the caller can attach it to the report that follows), then
    `on_epoch(record)`, then `should_stop()`; True ends training after that epoch (the selected
    weights still predict, `FoldResult.stopped` is True).
    """

    on_epoch: Callable[[dict], None] | None = None
    save_checkpoint: Callable[[dict], None] | None = None
    resume_from: dict | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass
class FoldResult:
    fold: str
    seed: int
    oracle: bool
    predictions: pd.DataFrame
    history: list[dict]
    selected_epoch: int
    test_scores: dict
    val_scores: dict | None
    timings: dict
    params: int
    oracle_selection: bool = False
    oracle_input: bool = False
    stopped: bool = False
    class_names: list[str] = field(default_factory=list)


def _check_inputs(cfg: ExperimentConfig, data: Any, fold: Any) -> None:
    k = cfg.model.num_classes
    if len(data.class_names) != k:
        raise ConfigError(
            f"model.num_classes is {k} but the data's label scheme {cfg.data.labels!r} has "
            f"{len(data.class_names)} classes ({', '.join(data.class_names)})"
        )
    samples = data.samples
    if "label" not in samples.columns:
        raise DataError("prepared data: the sample table has no 'label' column")
    n = len(samples)
    if data.global_clips.shape[0] != n:
        raise DataError(f"prepared data: {data.global_clips.shape[0]} clips for {n} sample rows")
    if data.global_clips.shape[-1] != cfg.model.in_channels:
        raise ConfigError(
            f"model.in_channels is {cfg.model.in_channels} but the prepared clips have "
            f"{data.global_clips.shape[-1]} channels"
        )
    for split in ("train", "val", "test"):
        rows = np.asarray(getattr(fold, split))
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise DataError(f"fold {fold.name}: {split} rows outside the sample table (0..{n - 1})")
    if np.asarray(fold.train).size == 0:
        raise DataError(f"fold {fold.name}: no training clips")
    if np.asarray(fold.test).size == 0:
        raise DataError(f"fold {fold.name}: no test clips")
    if cfg.protocol.selection == "inner_val" and np.asarray(fold.val).size == 0:
        raise ConfigError(
            f"fold {fold.name}: protocol.selection inner_val but the fold has no validation clips "
            "(set protocol.val_subjects >= 1)"
        )
    labels = samples["label"].to_numpy()
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"sample {samples['sample_id'].iloc[i]}: label {labels[i]} outside 0..{k - 1}"
        )


def run_fold(
    cfg: ExperimentConfig,
    data: Any,
    fold: Any,
    seed: int,
    *,
    hooks: FoldHooks | None = None,
    progress: bool = False,
) -> FoldResult:
    """Train on `fold.train`, select per `protocol.selection`, predict `fold.val` and `fold.test`.

    `data` is a `mer.data.cache.PreparedData`; `fold` a `mer.protocol.Fold`. Process-wide side
    effects (one fold per trial process, so they are meant for the whole process): torch's thread
    count when `train.threads` > 0, and `cudnn.benchmark` on CUDA (fastest kernels, at the price
    of bit-identical GPU reruns; CPU runs are bit-identical).
    """
    t_start = time.perf_counter()
    hooks = hooks or FoldHooks()
    _check_inputs(cfg, data, fold)
    k = cfg.model.num_classes
    runtime = resolve_runtime(cfg.train)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if runtime.cuda:
        torch.backends.cudnn.benchmark = True
    oracle_selection = cfg.protocol.selection == "oracle_test"
    # AU-chosen crops leak the class only to a model that sees them (branch B of a dual model).
    oracle_input = bool(getattr(data, "oracle_input", False)) and cfg.model.branches == "dual"
    rows = {"train": fold.train, "val": fold.val, "test": fold.test}

    gen = seed_everything(seed)
    guard = LabelGuard(data.samples["label"].to_numpy(), rows, test_open=oracle_selection)
    t0 = time.perf_counter()
    tensors = FoldTensors(
        data,
        rows,
        runtime.device,
        scaling=cfg.train.scaling,
        channels_last=runtime.channels_last,
    )
    runtime.sync()
    t_to_device = time.perf_counter() - t0

    # looked up on the modules when called: tests swap in a tiny network
    model = models.build_model(cfg.model, input_shape=tensors.clip_shape).to(runtime.device)
    if cfg.train.conv_impl == "t2d":
        fastpath.use_time_unfold_convs(model)  # same parameters and state dict, 2D kernels
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    params = int(sum(p.numel() for p in model.parameters()))
    weights = resolve_class_weights(cfg.train, guard.get("train"), k)
    trainer = Trainer(
        cfg, model, tensors, guard, runtime, gen, weights, fold_name=fold.name, seed=seed
    )
    if hooks.resume_from is not None:
        trainer.restore(hooks.resume_from)
        log.info("fold %s: resumed after epoch %d", fold.name, trainer.epoch)
    t_setup = time.perf_counter() - t_start - t_to_device

    t0 = time.perf_counter()
    stopped = trainer.fit(hooks, progress=progress)
    runtime.sync()
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    selected = trainer.use_selected()
    val_probs = trainer.predict("val") if tensors.sizes["val"] else None
    test_probs = trainer.predict("test")
    runtime.sync()
    t_predict = time.perf_counter() - t0

    # Only now, with the test predictions fixed, may the test labels be read.
    if not guard.test_open:
        guard.open_test()

    def logged(split: str, probs: np.ndarray) -> tuple[pd.DataFrame, dict]:
        """The split's prediction-log rows and its MEGC scores."""
        y = guard.get(split)
        table = prediction_table(
            data.samples,
            rows[split],
            split=split,
            fold=fold.name,
            y_true=y,
            probs=probs,
            oracle_selection=oracle_selection,
            oracle_input=oracle_input,
        )
        return table, _megc(y, probs, k)

    test_table, test_scores = logged("test", test_probs)
    tables, val_scores = [test_table], None
    if val_probs is not None:
        val_table, val_scores = logged("val", val_probs)
        tables.append(val_table)
    predictions = pd.concat(tables, ignore_index=True)
    timings = {
        "setup": t_setup,
        "to_device": t_to_device,
        "train": t_train,
        "predict": t_predict,
        "total": time.perf_counter() - t_start,
    }
    return FoldResult(
        fold=fold.name,
        seed=seed,
        oracle=oracle_selection or oracle_input,
        predictions=predictions,
        history=trainer.history,
        selected_epoch=selected,
        test_scores=test_scores,
        val_scores=val_scores,
        timings=timings,
        params=params,
        oracle_selection=oracle_selection,
        oracle_input=oracle_input,
        stopped=stopped,
        class_names=list(data.class_names),
    )


def _megc(y_true: np.ndarray, probs: np.ndarray, k: int) -> dict[str, float]:
    return megc_scores(y_true, probs.argmax(1), k)
