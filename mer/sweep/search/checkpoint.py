"""The searcher's checkpoint and pickling: what survives a driver restart, and where it lives.

Resume
------
The studies' storage (mer.sweep.search.storage) is the truth. The searcher's own checkpoint
(`save`/`restore`, called by Tune with the experiment state) holds only which Tune trial ids
belong to which fold and which configurations are open. On restore:
- a configuration finished in storage (told after Tune's last checkpoint) is closed; late results
  of its re-run folds are ignored;
- an open configuration takes its finished folds from storage, and the folds whose results the
  driver filed in OUT/trials but the study never heard of (a driver stopped between the two) from
  there (mer.sweep.search.reconcile); folds whose Tune trial was running at the checkpoint are
  left to Tune to re-run; the others are emitted again;
- a fold trial Tune re-runs although its results were filed is skipped by the trainable; the
  searcher then takes its results from OUT/trials too;
- a RUNNING Optuna trial unknown to the checkpoint (asked after it, or a fresh searcher pointed at
  an old study without a Tune checkpoint) is adopted: its params are reused and every fold without
  a stored result is emitted.
So the study continues to `search.trials`; it never restarts. A study run with other folds or
other objective directions is a ConfigError.

Tune also pickles the searcher object itself into tuner.pkl (by class path); pickles written
before the search modules were split name `mer.sweep.search.FoldFanoutSearcher`, which
mer.sweep.search re-exports, so they still load.

Where: a restored searcher was pickled (tuner.pkl) with the results folder and study storage of
the sweep's first run, absolute paths. A results folder moved since (copied to another disk or
machine, a job scratch directory) must resume from where it is now: the searcher takes both from
the run that restores it (`_relocate`: the active session's folder and config), never from the
pickle.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer.errors import ConfigError
from mer.sweep.search.storage import storage_url, study_name
from mer.sweep.session import active_session

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class _Open:
    """An open configuration: what is left to emit, what is out, what came back."""

    variant: str
    number: int
    overrides: dict[str, Any]
    pending: list[int]
    outstanding: set[int] = field(default_factory=set)
    done: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "number": self.number,
            "overrides": self.overrides,
            "pending": list(self.pending),
            "outstanding": sorted(self.outstanding),
            "done": {str(i): [t, p] for i, (t, p) in self.done.items()},
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> _Open:
        return cls(
            s["variant"],
            int(s["number"]),
            dict(s["overrides"]),
            list(s["pending"]),
            set(s["outstanding"]),
            {int(i): (list(t), list(p)) for i, (t, p) in s["done"].items()},
        )


class SearcherCheckpoint:
    """FoldFanoutSearcher's pickling, checkpoint (`save`/`restore`, Tune's Searcher API) and
    relocation to the results folder it resumes in."""

    _cfg: Any
    _out: Path
    _url: str
    _variants: list[str]
    _folds: dict[str, list[str]]
    _open: dict[tuple[str, int], _Open]
    _trial_map: dict[str, tuple[str, int, int]]
    _n_told: int

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_studies", "_optuna_trials", "_asked"):
            state[key] = {}
        state["_ready"] = False
        return state

    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "storage": self._url,
            "studies": [study_name(self._cfg, v) for v in self._variants],
            "folds": self._folds,
            "open": [c.to_state() for c in self._open.values()],
            "trial_map": {k: list(v) for k, v in self._trial_map.items()},
            "n_told": self._n_told,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"search: searcher checkpoint version {state.get('version')!r} is "
                f"not {STATE_VERSION}; cannot resume it"
            )
        pickled_url = self._url
        self._relocate()
        mine = [study_name(self._cfg, v) for v in self._variants]
        if state["storage"] not in (pickled_url, self._url) or state["studies"] != mine:
            raise ConfigError(
                f"search: the checkpoint belongs to studies {state['studies']} in "
                f"{state['storage']}; this sweep uses {mine} in {self._url}"
            )
        if state["folds"] != self._folds:
            raise ConfigError(
                "search: the checkpointed search ran other folds than this sweep's "
                "plan; resume with the same protocol"
            )
        self._open = {(s["variant"], int(s["number"])): _Open.from_state(s) for s in state["open"]}
        self._trial_map = {k: (v[0], int(v[1]), int(v[2])) for k, v in state["trial_map"].items()}
        self._n_told = int(state.get("n_told", 0))
        self._studies, self._optuna_trials, self._asked, self._ready = {}, {}, {}, False

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
        log.info("search: restored searcher state (%d open configuration(s))", len(self._open))

    def _relocate(self) -> None:
        """Take the results folder and study storage from the sweep run that uses this searcher
        now (a no-op outside one, e.g. a searcher driven directly)."""
        session = active_session()
        if session is None:
            return
        out = Path(session.out)
        url = storage_url(session.cfg, out)
        if (out, url) != (self._out, self._url):
            log.info(
                "search: the results folder is %s (the search started in %s); study storage %s",
                out, self._out, url,
            )  # fmt: skip
            self._out, self._url = out, url
