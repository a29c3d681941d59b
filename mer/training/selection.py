"""Which epoch's weights predict the test subject (protocol.selection).

- fixed_epochs: the final epoch (the default: a fixed budget never looks at the test subject);
- inner_val: the epoch with the best inner-validation UF1 (evaluated every `eval_every` epochs and
  at the last one; ties keep the earlier epoch);
- oracle_test: the epoch with the best test accuracy, as the original code did with Keras'
  ModelCheckpoint on the test subject (ties keep the earlier epoch). Reproduction only: every
  result it produces is flagged oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class Selector:
    def __init__(self, mode: str, *, eval_every: int, epochs: int, has_val: bool):
        self.mode = mode
        self.eval_every = max(1, int(eval_every))
        self.epochs = int(epochs)
        self.has_val = has_val
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def metric(self) -> str | None:
        return {"inner_val": "val_uf1", "oracle_test": "test_acc"}.get(self.mode)

    def eval_val(self, epoch: int) -> bool:
        """Evaluate inner validation after this epoch? (also under fixed_epochs, for curves)"""
        return self.has_val and (epoch % self.eval_every == 0 or epoch == self.epochs)

    def eval_test(self, epoch: int) -> bool:
        return self.mode == "oracle_test"

    def consider(
        self, epoch: int, record: dict[str, Any], state: Callable[[], dict[str, torch.Tensor]]
    ) -> bool:
        """Keep `state()` when this epoch's score beats the best so far; True when it did."""
        key = self.metric
        if key is None or key not in record:
            return False
        score = float(record[key])
        if self.best_score is not None and score <= self.best_score:
            return False
        self.best_epoch, self.best_score, self.best_state = epoch, score, state()
        return True

    def state_dict(self) -> dict[str, Any] | None:
        if self.best_epoch is None:
            return None
        return {"epoch": self.best_epoch, "score": self.best_score, "model": self.best_state}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.best_epoch = self.best_score = self.best_state = None
            return
        self.best_epoch = int(state["epoch"])
        self.best_score = float(state["score"])
        self.best_state = state["model"]
