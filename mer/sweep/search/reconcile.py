"""On (re)start the searcher's bookkeeping is made to agree with what is on disk: the Optuna
study storage (the truth for every configuration) and the results folder, whose filed fold
results the study may not have heard of.

Why the results folder: the driver files a fold's results (OUT/trials/, by the session's Tune
callback) a moment before Tune tells the searcher, which tells the study. A driver stopped in
between leaves a fold that is filed but not in the study; on --resume the trainable skips that
fold as done (it never trains a filed trial again), so the searcher must take the fold's
inner-validation labels from its prediction log and tell the study, or the configuration would
fail for want of a result that exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from mer.errors import ConfigError, DataError
from mer.experiment import layout
from mer.experiment.store import read_csv
from mer.sweep.search.checkpoint import _Open
from mer.sweep.search.fold_trial import search_label, val_labels
from mer.sweep.search.optuna_setup import fold_attr
from mer.util.jsonio import read_json

log = logging.getLogger(__name__)


def filed_val_labels(
    out: Path, variant: str, number: int, fold: str, seed: int
) -> tuple[list[int], list[int]] | None:
    """(val_true, val_pred) of a search fold trial the driver filed as done in OUT/trials, read
    from its prediction log's val rows; None when it is not filed (or failed)."""
    folder = layout.trial_dir(out, search_label(variant, number), fold, seed)
    result = folder / layout.TRIAL_RESULT
    if not result.exists():
        return None
    info = read_json(result, what="trial result")
    status = info.get("status") if isinstance(info, dict) else "?"
    if layout.normalize_status(status, result) != layout.STATUS_DONE:
        return None
    pred = read_csv(folder / layout.TRIAL_PREDICTIONS, f"predictions of a filed fold of {variant}")
    rows = pred[pred["split"] == "val"]
    try:
        return val_labels({"val_true": rows["true"].tolist(), "val_pred": rows["pred"].tolist()})
    except (KeyError, ValueError) as exc:
        raise DataError(f"{folder / layout.TRIAL_PREDICTIONS}: {exc}") from None


class Reconciler:
    """FoldFanoutSearcher's reconciliation with the study storage and the results folder."""

    _out: Path
    _url: str
    _seed: int
    _variants: list[str]
    _folds: dict[str, list[str]]
    _spaces: dict[str, Any]
    _studies: dict[str, Any]
    _open: dict[tuple[str, int], _Open]
    _asked: dict[str, int]
    # and, from the other parts of FoldFanoutSearcher: _finish, _record_fold (searcher)

    def filed(self, c: _Open, index: int) -> tuple[list[int], list[int]] | None:
        """The val labels of fold `index` of configuration `c` if the driver filed them."""
        fold = self._folds[c.variant][index]
        return filed_val_labels(self._out, c.variant, c.number, fold, self._seed)

    def _adopt_filed(self, c: _Open, index: int) -> bool:
        """A fold filed in OUT/trials that the study does not hold: tell it now."""
        labels = self.filed(c, index)
        if labels is None:
            return False
        log.info(
            "search: %s config %d fold %s was filed in %s before the driver stopped, but the study "
            "never heard of it; telling it from the results folder",
            c.variant, c.number, self._folds[c.variant][index], self._out,
        )  # fmt: skip
        c.done[index] = labels
        self._record_fold(c, index, *labels)
        return True

    def _reconcile(self) -> None:
        """Closed configurations closed, open ones given what storage and OUT/trials hold."""
        seen: set[tuple[str, int]] = set()
        for v in self._variants:
            study = self._studies[v]
            trials = study.get_trials(deepcopy=False)
            self._asked[v] = len(trials)
            for ft in trials:
                key = (v, ft.number)
                seen.add(key)
                folds = ft.user_attrs.get("folds")
                if folds is not None and list(folds) != self._folds[v]:
                    raise ConfigError(
                        f"search: study {study.study_name} in {self._url} was run on folds "
                        f"{folds}, this sweep plans {self._folds[v]}; resume with the same "
                        "protocol or use a new output folder"
                    )
                if ft.state != TrialState.RUNNING:
                    if self._open.pop(key, None) is not None:
                        log.info(
                            "search: %s config %d already %s in storage; closing it",
                            v,
                            ft.number,
                            ft.state.name,
                        )
                    continue
                c = self._open.get(key)
                if c is None:
                    raw = ft.user_attrs.get("overrides")
                    overrides = (
                        json.loads(raw)
                        if raw is not None
                        else self._spaces[v].decode_params(ft.params)
                    )
                    c = _Open(v, ft.number, overrides, pending=[])
                    self._open[key] = c
                    log.info("search: adopting running %s config %d from storage", v, ft.number)
                for i in range(len(self._folds[v])):
                    rec = ft.user_attrs.get(fold_attr(i))
                    if rec is not None:
                        c.done[i] = (list(rec["val_true"]), list(rec["val_pred"]))
                    else:
                        self._adopt_filed(c, i)
                c.outstanding -= set(c.done)
                c.pending = [
                    i
                    for i in range(len(self._folds[v]))
                    if i not in c.done and i not in c.outstanding
                ]
        missing = [k for k in self._open if k not in seen]
        if missing:
            raise ConfigError(
                f"search: the searcher checkpoint has configurations {missing} that storage "
                f"{self._url} does not hold; was the study file moved or deleted?"
            )
        self._open = dict(sorted(self._open.items(), key=lambda kv: (kv[0][1], kv[0][0])))
        for c in list(self._open.values()):
            if len(c.done) == len(self._folds[c.variant]):
                self._finish(c)
