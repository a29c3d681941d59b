"""Loss of the original code: class-weighted cross-entropy plus an L2 penalty on four kernels.

Keras' `sparse_categorical_crossentropy` with `class_weight` averages w[y]·nll over the batch; it
does not divide by the sum of the weights as `nn.CrossEntropyLoss(weight=...)` does, so the
weighted loss here is written out (MODEL.md §5). The L2 term (`kernel_regularizer=l2(0.01)`) is
added to the loss, i.e. coupled with Adam, and touches only the kernels the original regularised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer.config import TrainConfig
from mer.errors import ConfigError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ class weights
def resolve_class_weights(
    train: TrainConfig, train_labels: np.ndarray, num_classes: int
) -> np.ndarray | None:
    """Per-class weights for the loss, or None for plain cross-entropy.

    `train.loss: ce` or `class_weights: null` → None. A list is used as written. `balanced` is
    n / (K · n_c) over this fold's training labels only (never validation or test rows); a class
    without training clips gets weight 0 (no sample of it is in the loss anyway) and a warning.
    """
    if train.loss == "ce" or train.class_weights is None:
        return None
    if isinstance(train.class_weights, str):  # "balanced" (the config allows nothing else)
        labels = np.asarray(train_labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        weights = np.zeros(num_classes, dtype=np.float64)
        present = counts > 0
        weights[present] = labels.size / (num_classes * counts[present])
        if not present.all():
            log.warning(
                "train.class_weights balanced: class(es) %s have no training clips in this fold; "
                "their weight is 0",
                np.flatnonzero(~present).tolist(),
            )
        return weights
    weights = np.asarray(train.class_weights, dtype=np.float64)
    if weights.shape != (num_classes,):
        raise ConfigError(
            f"train.class_weights: expected {num_classes} weights, got {len(weights)}"
        )
    return weights


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None):
    """mean_i w[y_i] · (−log softmax(logits_i)[y_i]); plain mean NLL when weights is None.

    Computed in float32 whatever the autocast dtype of the logits.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    nll = -logp.gather(1, target.view(-1, 1)).squeeze(1)
    if weights is None:
        return nll.mean()
    return (weights[target] * nll).mean()


# ------------------------------------------------------------------------------------- L2 term
def l2_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, tensor) pairs the L2 penalty applies to.

    Asks the model (`model.l2_parameters()`, parameters or (name, parameter) pairs): it knows
    which kernels the original regularised under each architecture switch (mer.models tags those
    Linear layers with `l2 = True`). Without the method, Linear layers tagged `l2` are used.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    fn = getattr(model, "l2_parameters", None)
    if callable(fn):
        items = list(fn())
    else:
        items = [m.weight for m in model.modules() if getattr(m, "l2", False)]
    out = []
    for item in items:
        name, p = item if isinstance(item, tuple) else (names.get(id(item), "?"), item)
        out.append((name, p))
    return out


def l2_penalty(tensors: Iterable[torch.Tensor], coef: float) -> torch.Tensor | None:
    """coef · Σ w² over `tensors` (float32), or None when there is nothing to add."""
    tensors = list(tensors)
    if coef == 0 or not tensors:
        return None
    total = torch.stack([t.float().pow(2).sum() for t in tensors]).sum()
    return coef * total
