"""`FoldFanoutSearcher`: Optuna configurations → one Tune trial per fold → one pooled value each.

The trial config it hands out and the result keys it reads are in mer.sweep.search.fold_trial;
the studies' storage in mer.sweep.search.storage; how `run_search` drives it in mer.sweep.search.

What the searcher does
----------------------
- Asks the variant's study for a configuration (`SearchSpace.sample`, conditional parameters
  included; keys the ablation variant fixes are not searched in its study), checks it with
  `with_overrides` and by building its model on the meta device (an impossible combination is
  told FAIL at once and counts toward the budget; params and gflops are stored as user attrs),
  then emits one fold trial per `suggest` call, in fold order. At most
  `search.concurrent_configs` configurations are open at once across variants; new ones go to the
  variant with the fewest configurations so far (one study per variant, `{cfg.name}/{variant}`,
  each with the full `search.trials` budget). TPE runs multivariate, grouped when the space is
  conditional, with constant liar so open configurations repel new ones.
- Each fold result: stored on the Optuna trial (user attr `fold_NNN` = fold, val_true, val_pred),
  its val score reported as `trial.report(score, step=fold_index)` (same fold order for every
  configuration, as WilcoxonPruner pairs steps), then `trial.should_prune()`.
- Pruned (WilcoxonPruner(p_threshold=search.pruner_p), single objective only): folds not yet
  emitted are never emitted; fold trials already running are not stopped by Tune (a Searcher
  cannot stop trials), but the searcher writes their `cancel_marker` file, which mer.sweep.trial
  polls in FoldHooks.should_stop to end training early; whatever they report is ignored. Optuna
  is told PRUNED. With n folds done the smallest one-sided p is 2^-n, so at p 0.1 a configuration
  can be pruned after 4 folds at the earliest (0.3: after 2).
- A fold trial that errors (after Tune's retries, resources.max_failures) or reports no val
  labels fails its configuration: Optuna FAIL, remaining folds not emitted.
- Last fold in: pooled val predictions of all folds (concatenated in fold order; a clip that is
  validation in several folds counts once per fold) → `mer.metrics.megc_scores` →
  `search.objective.metric`; Optuna is told that value once (plus params / gflops when
  `search.extra_objectives` asks for them: multi-objective, directions maximize, minimize...;
  pruning is off there, Optuna cannot prune multi-objective studies).

Resume
------
The studies' storage (mer.sweep.search.storage) is the truth. The searcher's own checkpoint
(`save`/`restore`, called by Tune with the experiment state) holds only which Tune trial ids
belong to which fold and which configurations are open. On restore:
- a configuration finished in storage (told after Tune's last checkpoint) is closed; late results
  of its re-run folds are ignored;
- an open configuration takes its finished folds from storage; folds whose Tune trial was running
  at the checkpoint are left to Tune to re-run; the others are emitted again;
- a RUNNING Optuna trial unknown to the checkpoint (asked after it, or a fresh searcher pointed at
  an old study without a Tune checkpoint) is adopted: its params are reused and every fold without
  a stored result is emitted.
So the study continues to `search.trials`; it never restarts. A study run with other folds or
other objective directions is a ConfigError.

Tune also pickles the searcher object itself into tuner.pkl (by class path); pickles written
before the search modules were split name `mer.sweep.search.FoldFanoutSearcher`, which
mer.sweep.search re-exports, so they still load.
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from mer.config import ExperimentConfig, variant_config, with_overrides
from mer.errors import ConfigError
from mer.experiment import layout
from mer.metrics import megc_scores
from mer.sweep.search.fold_trial import RESULT_KEYS, SKIPPED_KEY, search_label, val_labels
from mer.sweep.search.storage import directions, open_storage, storage_url, study_name
from mer.sweep.space import parse_space

log = logging.getLogger(__name__)

STATE_VERSION = 1


def _fold_attr(index: int) -> str:
    return f"fold_{index:03d}"


def _model_stats(cfg: ExperimentConfig) -> dict[str, Any]:
    """params / gflops of the configuration's model, built on the meta device (~0.1 s).

    Building it also runs the checks that need the sequence width (msmh_scales vs
    recurrent_units, mha_heads, ...), so an impossible combination fails before any fold runs
    (the config's own cross-field rules, e.g. attention_reduction vs merge_channels, already
    failed in `with_overrides`).
    """
    from mer.models.summary import model_stats

    try:
        return model_stats(cfg)
    except (ValueError, RuntimeError) as exc:  # torch shape errors of a combination
        raise ConfigError(f"the model cannot be built ({exc})") from None


# -------------------------------------------------------------------------------- searcher
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


class FoldFanoutSearcher(Searcher):
    """Optuna configurations → one Tune trial per fold → one pooled inner-val value per config.

    See this module's docstring for what it does and resume semantics, and
    mer.sweep.search.fold_trial for the trial config and the result keys.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        folds: Sequence[str] | Mapping[str, Sequence[str]],
        out_dir: str | Path,
        *,
        variants: Sequence[str] | None = None,
    ) -> None:
        super().__init__(metric=None, mode=None)
        if cfg.search is None:
            raise ConfigError("search: this sweep has no `search` section (search mode needs one)")
        self._cfg = cfg
        self._out = Path(out_dir).expanduser().resolve()
        self._variants = list(variants) if variants is not None else list(cfg.variants)
        unknown = [v for v in self._variants if v not in cfg.ablations]
        if unknown or not self._variants:
            raise ConfigError(
                f"search: unknown variant(s) {unknown} (this sweep has {', '.join(cfg.ablations)})"
            )
        self._folds: dict[str, list[str]] = {}
        for v in self._variants:
            names = list(folds[v] if isinstance(folds, Mapping) else folds)
            if not names or len(set(names)) != len(names):
                raise ConfigError(
                    f"search: variant {v} needs a non-empty list of distinct fold names, got "
                    f"{names!r}"
                )
            self._folds[v] = names
        self._seed = int(cfg.seeds[0])
        self._url = storage_url(cfg, self._out)
        base_space = parse_space(cfg.search.space, cfg)
        if not base_space.params:
            raise ConfigError("search.space: expected at least one parameter to search")
        self._vcfgs = {v: variant_config(cfg, v) for v in self._variants}
        self._spaces = {v: base_space.for_variant(cfg.ablations[v]) for v in self._variants}
        for v, space in self._spaces.items():
            if space.dropped:
                log.warning(
                    "search: variant %s fixes %s, so its study does not search %s",
                    v,
                    ", ".join(space.dropped),
                    ", ".join(space.dropped),
                )
            if not space.params:
                raise ConfigError(
                    f"search: variant {v} fixes every searched key; nothing to search"
                )
        self._multi = bool(cfg.search.extra_objectives)
        self._pruning = cfg.search.pruner == "wilcoxon" and not self._multi
        if cfg.search.pruner == "wilcoxon" and self._multi:
            log.warning(
                "search: WilcoxonPruner is single-objective; pruning is off with "
                "extra_objectives %s",
                cfg.search.extra_objectives,
            )
        # Bookkeeping (checkpointed with the experiment).
        self._open: dict[tuple[str, int], _Open] = {}
        self._trial_map: dict[str, tuple[str, int, int]] = {}
        self._n_told = 0
        # Runtime only (rebuilt on first use; never pickled).
        self._studies: dict[str, Any] = {}
        self._optuna_trials: dict[tuple[str, int], Any] = {}
        self._asked: dict[str, int] = {}
        self._ready = False

    # ------------------------------------------------------------------ pickling / checkpoint
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
        mine = [study_name(self._cfg, v) for v in self._variants]
        if state["storage"] != self._url or state["studies"] != mine:
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

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        # The objective is computed here from val predictions, not read from a Tune metric; the
        # param_space constants are merged into each suggestion by Tune itself.
        return True

    # -------------------------------------------------------------------------- properties
    @property
    def storage(self) -> str:
        return self._url

    @property
    def folds(self) -> dict[str, list[str]]:
        return {v: list(f) for v, f in self._folds.items()}

    def study(self, variant: str) -> Any:
        """The Optuna study of one variant (opened on first use)."""
        self._ensure_ready()
        return self._studies[variant]

    # ----------------------------------------------------------------------- Optuna setup
    def _make_sampler(self, variant: str, n_existing: int) -> Any:
        import optuna

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
        import optuna

        if not self._pruning:
            return optuna.pruners.NopPruner()
        return optuna.pruners.WilcoxonPruner(
            p_threshold=self._cfg.search.pruner_p, n_startup_steps=2
        )

    def _ensure_ready(self) -> None:
        """Open the studies and reconcile the bookkeeping with what the storage holds."""
        if self._ready:
            return
        import optuna

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

    def _reconcile(self) -> None:
        from optuna.trial import TrialState

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
                    rec = ft.user_attrs.get(_fold_attr(i))
                    if rec is not None:
                        c.done[i] = (list(rec["val_true"]), list(rec["val_pred"]))
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

    def _trial(self, c: _Open) -> Any:
        """The live optuna.Trial of an open configuration (re-attached after a restore)."""
        import optuna

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

    # ------------------------------------------------------------------------------ asking
    def _next_variant(self) -> str | None:
        budget = self._cfg.search.trials
        left = [v for v in self._variants if self._asked[v] < budget]
        return min(left, key=lambda v: (self._asked[v], self._variants.index(v))) if left else None

    def _ask(self, variant: str) -> _Open | None:
        """A new valid configuration of `variant`; None when invalid ones used up its budget."""
        from optuna.trial import TrialState

        study = self._studies[variant]
        vcfg = self._vcfgs[variant]
        while self._asked[variant] < self._cfg.search.trials:
            trial = study.ask()
            self._asked[variant] += 1
            overrides = self._spaces[variant].sample(trial, vcfg)
            trial.set_user_attr("variant", variant)
            trial.set_user_attr("folds", self._folds[variant])
            trial.set_user_attr("seed", self._seed)
            trial.set_user_attr("overrides", json.dumps(overrides, sort_keys=True))
            try:
                tcfg = with_overrides(vcfg, overrides) if overrides else vcfg
                stats = _model_stats(tcfg)
            except ConfigError as exc:
                reason = f"invalid configuration: {exc}"
                log.warning("search: %s config %d: %s", variant, trial.number, reason)
                trial.set_user_attr("fail_reason", reason)
                study.tell(trial, state=TrialState.FAIL)
                self._n_told += 1
                continue
            trial.set_user_attr("params", int(stats["params"]))
            trial.set_user_attr("gflops", float(stats["gflops"]))
            c = _Open(
                variant, trial.number, overrides, pending=list(range(len(self._folds[variant])))
            )
            self._open[(variant, trial.number)] = c
            self._optuna_trials[(variant, trial.number)] = trial
            log.info("search: %s config %d: %s", variant, trial.number, overrides)
            return c
        return None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        self._ensure_ready()
        c = next((c for c in self._open.values() if c.pending), None)
        while c is None:
            if len(self._open) >= self._cfg.search.concurrent_configs:
                return None  # wait for an open configuration to finish
            variant = self._next_variant()
            if variant is None:
                if self._open:
                    return None  # budget spent; folds of open configurations still running
                log.info(
                    "search: budget spent (%d configuration(s) per variant)",
                    self._cfg.search.trials,
                )
                return Searcher.FINISHED
            c = self._ask(variant)
        index = c.pending.pop(0)
        c.outstanding.add(index)
        self._trial_map[trial_id] = (c.variant, c.number, index)
        return {
            "mode": "search",
            "variant": c.variant,
            "config_id": c.number,
            "fold": self._folds[c.variant][index],
            "fold_index": index,
            "seed": self._seed,
            "overrides": dict(c.overrides),
            "label": search_label(c.variant, c.number),
            "cancel_marker": str(self._marker(c.variant, c.number)),
        }

    def _marker(self, variant: str, number: int) -> Path:
        return layout.cancel_marker(self._out, variant, number)

    # ---------------------------------------------------------------------------- results
    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self._ensure_ready()
        key = self._trial_map.pop(trial_id, None)
        if key is None:
            return  # not ours, or a duplicate completion
        variant, number, index = key
        c = self._open.get((variant, number))
        if c is None or index in c.done:
            log.debug(
                "search: ignoring result of %s config %d fold %d (closed or duplicate)",
                variant,
                number,
                index,
            )
            return
        c.outstanding.discard(index)
        fold = self._folds[variant][index]
        if error or result is None:
            why = "errored" if error else "stopped before reporting"
            self._close(c, "FAIL", f"fold {fold} trial {trial_id} {why}")
            return
        if result.get(SKIPPED_KEY):
            self._close(
                c,
                "FAIL",
                f"fold {fold}: the runner skipped the trial as done, but the "
                "study holds no result for it",
            )
            return
        try:
            y_true, y_pred = val_labels(result)
        except ValueError as exc:
            log.error(
                "search: fold trial %s (%s config %d, fold %s): %s; the trainable must report %s",
                trial_id,
                variant,
                number,
                fold,
                exc,
                ", ".join(RESULT_KEYS),
            )
            self._close(c, "FAIL", f"fold {fold}: {exc}")
            return
        c.done[index] = (y_true, y_pred)
        trial = self._trial(c)
        trial.set_user_attr(
            _fold_attr(index), {"fold": fold, "val_true": y_true, "val_pred": y_pred}
        )
        if self._pruning and y_true:
            # Every fold's score is an intermediate value (step = fold index), the last one too:
            # WilcoxonPruner pairs a trial's steps with the best trial's.
            num_classes = self._vcfgs[variant].model.num_classes
            score = megc_scores(y_true, y_pred, num_classes)[self._cfg.search.objective.metric]
            trial.report(score, step=index)
        if len(c.done) == len(self._folds[variant]):
            self._finish(c)
        elif self._pruning and y_true and trial.should_prune():
            self._close(c, "PRUNED", f"pruned after {len(c.done)} fold(s)")

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return None  # intermediate (per-epoch) results carry nothing the search needs

    def _finish(self, c: _Open) -> None:
        """All folds in: tell Optuna the pooled inner-validation objective, once."""
        folds = self._folds[c.variant]
        num_classes = self._vcfgs[c.variant].model.num_classes
        y_true = [y for i in range(len(folds)) for y in c.done[i][0]]
        y_pred = [y for i in range(len(folds)) for y in c.done[i][1]]
        if not y_true:
            self._close(c, "FAIL", "no inner-validation predictions in any fold")
            return
        scores = megc_scores(y_true, y_pred, num_classes)
        trial = self._trial(c)
        trial.set_user_attr("val_pooled", {**scores, "n": len(y_true)})
        values = [scores[self._cfg.search.objective.metric]]
        extra = list(self._cfg.search.extra_objectives)
        if any(name not in trial.user_attrs for name in extra):  # adopted before they were set
            stats = _model_stats(with_overrides(self._vcfgs[c.variant], c.overrides))
            for name in ("params", "gflops"):
                trial.set_user_attr(name, float(stats[name]))
        values += [float(trial.user_attrs[name]) for name in extra]
        self._studies[c.variant].tell(c.number, values if self._multi else values[0])
        self._n_told += 1
        self._drop(c)
        log.info(
            "search: %s config %d done: val %s %.4f over %d fold(s)",
            c.variant,
            c.number,
            self._cfg.search.objective.metric,
            values[0],
            len(folds),
        )

    def _close(self, c: _Open, state: str, reason: str) -> None:
        """Tell Optuna PRUNED or FAIL; never emit the configuration's remaining folds."""
        from optuna.trial import TrialState

        trial = self._trial(c)
        trial.set_user_attr("fail_reason" if state == "FAIL" else "prune_reason", reason)
        self._studies[c.variant].tell(c.number, state=TrialState[state])
        self._n_told += 1
        skipped = len(c.pending)
        self._drop(c)
        if c.outstanding:
            marker = self._marker(c.variant, c.number)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{state}: {reason}\n")
        log.info(
            "search: %s config %d %s (%s); %d fold(s) not emitted, %d running",
            c.variant,
            c.number,
            state,
            reason,
            skipped,
            len(c.outstanding),
        )

    def _drop(self, c: _Open) -> None:
        self._open.pop((c.variant, c.number), None)
        self._optuna_trials.pop((c.variant, c.number), None)
        c.pending = []
