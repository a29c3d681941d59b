"""The Optuna side of the search: each variant's study (opened, checked, with its sampler and
pruner) and the live Optuna trial of an open configuration.

Why apart: what the studies are (names, directions, the storage they live in, which sampler and
pruner, seeded how) is the search's setup, decided once per driver run; the searcher's fan-out
logic (mer.sweep.search.searcher) only asks, reports and tells.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna

from mer.config import ExperimentConfig
from mer.errors import ConfigError
from mer.models import summary as model_summary
from mer.sweep.search.checkpoint import _Open
from mer.sweep.search.storage import directions, open_storage, study_name

log = logging.getLogger(__name__)


def fold_attr(index: int) -> str:
    """The Optuna user attribute holding a configuration's fold `index` result."""
    return f"fold_{index:03d}"


def model_stats(cfg: ExperimentConfig) -> dict[str, Any]:
    """params / gflops of the configuration's model, built on the meta device (~0.1 s).

    Building it also runs the checks that need the sequence width (msmh_scales vs
    recurrent_units, mha_heads, ...), so an impossible combination fails before any fold runs
    (the config's own cross-field rules, e.g. attention_reduction vs merge_channels, already
    failed in `with_overrides`).
    """
    try:
        return model_summary.model_stats(cfg)
    except (ValueError, RuntimeError) as exc:  # torch shape errors of a combination
        raise ConfigError(f"the model cannot be built ({exc})") from None


class StudySetup:
    """FoldFanoutSearcher's studies: opened on first use, then reconciled with its bookkeeping."""

    _cfg: ExperimentConfig
    _url: str
    _variants: list[str]
    _spaces: dict[str, Any]
    _multi: bool
    _pruning: bool
    _studies: dict[str, Any]
    _optuna_trials: dict[tuple[str, int], Any]
    _ready: bool

    # and, from the other parts of FoldFanoutSearcher: _relocate (mer.sweep.search.checkpoint)
    # and _reconcile (mer.sweep.search.reconcile)

    def _make_sampler(self, variant: str, n_existing: int) -> Any:
        s = self._cfg.search
        # Offset by the trials already in storage: a resumed sampler must not replay the same
        # random start-up points as the first run.
        seed = int(s.seed) + 1000 * self._variants.index(variant) + n_existing
        if s.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if s.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=max(2, min(50, s.trials // 4))
            )
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=min(10, max(2, s.trials // 4)),
            multivariate=True if not self._multi else None,
            group=self._spaces[variant].conditional and not self._multi,
            constant_liar=True,
        )

    def _make_pruner(self) -> Any:
        if not self._pruning:
            return optuna.pruners.NopPruner()
        return optuna.pruners.WilcoxonPruner(
            p_threshold=self._cfg.search.pruner_p, n_startup_steps=2
        )

    def _ensure_ready(self) -> None:
        """Open the studies and reconcile the bookkeeping with what the storage holds."""
        if self._ready:
            return
        self._relocate()  # a restored searcher: the study lives where the results folder is now
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self._url)
        wanted = directions(self._cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for v in self._variants:
                name = study_name(self._cfg, v)
                try:
                    existing = optuna.load_study(study_name=name, storage=storage)
                    n_existing = len(existing.get_trials(deepcopy=False))
                except KeyError:
                    n_existing = 0
                study = optuna.create_study(
                    study_name=name,
                    storage=storage,
                    directions=wanted,
                    load_if_exists=True,
                    sampler=self._make_sampler(v, n_existing),
                    pruner=self._make_pruner(),
                )
                got = [d.name.lower() for d in study.directions]
                if got != wanted:
                    raise ConfigError(
                        f"search: study {name} in {self._url} optimises {got}, this sweep asks "
                        f"{wanted} (search.extra_objectives changed?); use a new output folder"
                    )
                study.set_metric_names(
                    [self._cfg.search.objective.metric] + list(self._cfg.search.extra_objectives)
                )
                self._studies[v] = study
        self._reconcile()
        self._ready = True

    def _trial(self, c: _Open) -> Any:
        """The live optuna.Trial of an open configuration (re-attached after a restore)."""
        key = (c.variant, c.number)
        trial = self._optuna_trials.get(key)
        if trial is None:
            study = self._studies[c.variant]
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, c.number
            )
            trial = optuna.trial.Trial(study, trial_id)
            self._optuna_trials[key] = trial
        return trial
