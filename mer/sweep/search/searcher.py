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

Resume: mer.sweep.search.checkpoint (the searcher's own checkpoint) and
mer.sweep.search.reconcile (what the study and the results folder hold on restore).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search import Searcher

from mer.config import ExperimentConfig, variant_config, with_overrides
from mer.errors import ConfigError
from mer.experiment import layout
from mer.metrics import megc_scores
from mer.sweep.search.checkpoint import STATE_VERSION, SearcherCheckpoint, _Open
from mer.sweep.search.fold_trial import RESULT_KEYS, SKIPPED_KEY, search_label, val_labels
from mer.sweep.search.optuna_setup import StudySetup, fold_attr, model_stats
from mer.sweep.search.reconcile import Reconciler
from mer.sweep.search.storage import storage_url
from mer.sweep.space import parse_space

# Names this module held before it was split (pickles name mer.sweep.search.searcher:_Open).
__all__ = ["STATE_VERSION", "FoldFanoutSearcher", "_Open"]
_fold_attr, _model_stats = fold_attr, model_stats

log = logging.getLogger(__name__)


class FoldFanoutSearcher(SearcherCheckpoint, StudySetup, Reconciler, Searcher):
    """Optuna configurations → one Tune trial per fold → one pooled inner-val value per config.

    See this module's docstring for what it does, mer.sweep.search.checkpoint and
    mer.sweep.search.reconcile for resume semantics, and mer.sweep.search.fold_trial for the
    trial config and the result keys. Its parts: SearcherCheckpoint (pickling, checkpoint,
    relocation), StudySetup (the Optuna studies), Reconciler (what storage and OUT/trials hold).
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

    # ------------------------------------------------------------------------------ asking
    def _next_variant(self) -> str | None:
        budget = self._cfg.search.trials
        left = [v for v in self._variants if self._asked[v] < budget]
        return min(left, key=lambda v: (self._asked[v], self._variants.index(v))) if left else None

    def _ask(self, variant: str) -> _Open | None:
        """A new valid configuration of `variant`; None when invalid ones used up its budget."""
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
                stats = model_stats(tcfg)
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
            # filed before a driver stopped, the study not told: its results are in OUT/trials
            labels = self.filed(c, index)
            if labels is None:
                self._close(
                    c,
                    "FAIL",
                    f"fold {fold}: the runner skipped the trial as done, but neither the study "
                    f"nor {self._out / layout.TRIALS_DIR} holds its result",
                )
                return
            log.info(
                "search: %s config %d fold %s: results filed before the driver stopped; taken "
                "from %s", variant, number, fold, self._out / layout.TRIALS_DIR,
            )  # fmt: skip
            result = {"val_true": labels[0], "val_pred": labels[1]}
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
        trial = self._record_fold(c, index, y_true, y_pred)
        if len(c.done) == len(self._folds[variant]):
            self._finish(c)
        elif self._pruning and y_true and trial.should_prune():
            self._close(c, "PRUNED", f"pruned after {len(c.done)} fold(s)")

    def _record_fold(self, c: _Open, index: int, y_true: list[int], y_pred: list[int]) -> Any:
        """Store a fold's val labels on the configuration's Optuna trial and report its score;
        returns that trial."""
        trial = self._trial(c)
        fold = self._folds[c.variant][index]
        trial.set_user_attr(
            fold_attr(index), {"fold": fold, "val_true": y_true, "val_pred": y_pred}
        )
        if self._pruning and y_true:
            # Every fold's score is an intermediate value (step = fold index), the last one too:
            # WilcoxonPruner pairs a trial's steps with the best trial's.
            num_classes = self._vcfgs[c.variant].model.num_classes
            score = megc_scores(y_true, y_pred, num_classes)[self._cfg.search.objective.metric]
            trial.report(score, step=index)
        return trial

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
            stats = model_stats(with_overrides(self._vcfgs[c.variant], c.overrides))
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
