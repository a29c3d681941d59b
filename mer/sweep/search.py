"""Search mode: an Optuna study behind a Ray Tune searcher that fans each configuration out by fold.

Why a custom searcher: the objective of a configuration is a *pooled* inner-validation score over
all its folds (PROTOCOL.md §3-4), so one Optuna trial must become several Tune trials (one per fold)
and Optuna must hear exactly one value, after the last fold, never computed from a test fold.

Terms: a *configuration* is one Optuna trial (`config_id` = its number in the variant's study);
a *fold trial* is one Tune trial = (variant, configuration, fold). `search.trials` counts
configurations per variant (every asked configuration counts, pruned and failed ones too).

Held-out subjects (why the search folds give no test estimate)
--------------------------------------------------------------
Each search fold moves `protocol.val_subjects` of its training subjects to validation, and those
are test subjects of other folds: the labels of (nearly) every subject feed the objective, so the
chosen configuration's test score on the search folds is optimistic (PROTOCOL.md §4.1). Hence
`search.holdout_subjects`: N subjects set aside before the search (label-free, from `search.seed`,
stratified by dataset: `mer.protocol.holdout_subjects`) are in no split of any search fold (the plan
builds the folds over the remaining, development, subjects). After the search, each variant's best
configuration (chosen on inner validation only) is trained and tested LOSO on the held-out subjects:
one fold per held-out subject, training on every other subject. That evaluation is an ordinary
ablation sweep, generated as OUT/search/holdout.yaml (`holdout_raw`; variant = searched variant +
its best overrides) and run at the end of `run_search` through `mer.sweep.runner.run_ablation` on
the same Ray (unless `search.evaluate_holdout: false`); its results are a normal sweep folder,
OUT/{name}-holdout/ (summary, prediction logs, W&B, report), and can be run or resumed by hand
(`python run_sweep.py OUT/search/holdout.yaml [--resume]`). Its pooled test metrics are the only
test numbers the search summary reports. With `holdout_subjects: 0` the summary says that no clean
test estimate exists. The search folds' test predictions stay in the trial prediction logs but are
summarised nowhere (`mer report` shows a search's configurations on their validation clips).

Contract with the runner (mer.sweep.main / runner / trial)
-----------------------------------------------------------
`run_search(cfg, opts)` is the search-mode counterpart of `mer.sweep.runner.run_ablation`: it
opens the runner's Session (data, plan, Ray, results folder), builds the searcher from the plan's
folds for `cfg.seeds[0]`, calls `Session.run(search_alg=searcher, num_samples=-1)` (with
`--resume`, Session.run restores the Tune experiment and Tune restores the searcher), writes the
search summary and, once every variant's search is finished, the hold-out evaluation's config,
then runs that evaluation (`evaluate_holdout`; with `--resume` it continues an interrupted one, and
a finished search re-runs no search trial) and rewrites the summary with its metrics.
`mer.sweep.main` only has to dispatch to it when the config has a `search` section. What it does,
for anyone wiring Tune differently (driver)::

    searcher = FoldFanoutSearcher(cfg, folds, out_dir)     # folds: names in protocol order, from
                                                           # the seed-cfg.seeds[0] plan, or a
                                                           # {variant: [names]} mapping
    tune.Tuner(trainable, param_space={...constants...},
               tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                           metric=None, mode=None),  # searcher stops with FINISHED
               run_config=tune.RunConfig(...))
    ...fit()...
    write_search_summary(cfg, out_dir)                     # after fit: OUT/search/best.json
                                                           # (+ holdout.yaml, then run it)

`num_samples=-1`: the searcher alone decides how many fold trials there are and returns
`Searcher.FINISHED`. `max_concurrent_trials` may be set (Tune wraps a ConcurrencyLimiter; fine).
Do not pass `metric`/`mode` meant for the searcher; the objective is not a per-trial metric.
Resume: `tune.Tuner.restore(path, trainable, resume_unfinished=True)` (Tune's default) — Tune
unpickles the searcher and calls `restore()`; fold trials that were running are re-run by Tune and
the searcher waits for them; everything else comes from the Optuna storage (see "Resume").
With `resume_errored=True` Tune also re-runs fold trials that had errored; their configuration
already failed, so those results are ignored (wasted compute, no effect on the study).

Trial config (what `suggest` returns, merged by Tune into `param_space`)::

    {"mode": "search", "variant": str, "config_id": int, "fold": str, "fold_index": int,
     "seed": int, "overrides": {dotted key: value}, "label": "{variant}.c{config_id:04d}",
     "cancel_marker": str (a path)}

The trainable builds its config with `search_trial_config(cfg, trial_config)` (=
`with_overrides(variant_config(cfg, variant), overrides)`), runs that fold with that seed, and
polls `cancel_requested(trial_config)` (the marker file exists) in `FoldHooks.should_stop` to stop
early once the configuration is pruned or failed (mer.sweep.trial does; optional, as results of a
closed configuration are ignored anyway).
Results are filed under `label` (one name per configuration, so `trials/{label}/{seed}/
{fold_safe}/` and the prediction log's `variant` column keep configurations apart; a `config_id`
column instead is accepted too).

Final result of each fold trial (top-level keys of the last `tune.report`), either::

    val_true: list[int]   inner-validation labels of that fold, in a fixed order
    val_pred: list[int]   predictions for the same clips

or the runner's `predictions` table as a dict of columns (`split`, `true`, `pred`, ...; Tune
hands it to searchers flattened as `predictions/split` ...), of which only the rows with
split == "val" are read. Nothing else is read: the searcher copies the val
labels out of the result and drops the rest, so test rows and test fields never reach the
objective. A result without them (or an errored fold trial) fails the configuration (Optuna FAIL,
reason in user attr `fail_reason`).

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
Storage is an Optuna journal file, `OUT/search/study.journal` unless `search.storage` names
another journal path or an RDB URL (`sqlite:///...`, needs sqlalchemy); optuna-dashboard opens
either. The searcher's own checkpoint (`save`/`restore`, called by Tune with the experiment state)
holds only which Tune trial ids belong to which fold and which configurations are open. On restore
the storage is the truth:
- a configuration finished in storage (told after Tune's last checkpoint) is closed; late results
  of its re-run folds are ignored;
- an open configuration takes its finished folds from storage; folds whose Tune trial was running
  at the checkpoint are left to Tune to re-run; the others are emitted again;
- a RUNNING Optuna trial unknown to the checkpoint (asked after it, or a fresh searcher pointed at
  an old study without a Tune checkpoint) is adopted: its params are reused and every fold without
  a stored result is emitted.
So the study continues to `search.trials`; it never restarts. A study run with other folds or
other objective directions is a ConfigError.

After the search `write_search_summary` writes OUT/search/best.json, summary.csv and summary.md:
per variant the best configuration by the inner-validation objective and, when the hold-out
evaluation has run, its pooled test UF1/UAR/accuracy on the held-out subjects (read from
OUT/{name}-holdout/summary.csv, labelled "held-out subjects, never seen by the search"); with
`holdout_subjects: 0`, the plain statement that no clean test estimate exists.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune.search import Searcher

from mer.config import ExperimentConfig, variant_config, with_overrides
from mer.errors import ConfigError
from mer.metrics import megc_scores
from mer.sweep.space import parse_space

log = logging.getLogger(__name__)

STATE_VERSION = 1
RESULT_KEYS = ("val_true", "val_pred")
SKIPPED_KEY = "mer_skipped"  # = mer.sweep.trial.SKIPPED_KEY: a resumed trial already on disk
DEFAULT_STORAGE = "study.journal"
HOLDOUT_CONFIG = "holdout.yaml"
HOLDOUT_NOTE = "held-out subjects, never seen by the search"
NO_HOLDOUT_NOTE = (
    "No clean test estimate: search.holdout_subjects is 0, so every subject's labels fed the "
    "objective (each subject trains or validates in some search fold, and each fold's validation "
    "subjects are other folds' test subjects); testing the chosen configuration on these subjects "
    "would be optimistic (PROTOCOL.md §4.1). Hold subjects out with search.holdout_subjects."
)


# ------------------------------------------------------------------------------- trial side
def search_trial_config(cfg: ExperimentConfig, trial_config: Mapping[str, Any]) -> ExperimentConfig:
    """The ExperimentConfig one search fold trial trains: variant, then the sampled overrides."""
    vcfg = variant_config(cfg, trial_config["variant"])
    overrides = trial_config.get("overrides") or {}
    return with_overrides(vcfg, dict(overrides)) if overrides else vcfg


def search_label(variant: str, config_id: int) -> str:
    """The name a configuration's results are filed under (trial folders, prediction log)."""
    return f"{variant}.c{int(config_id):04d}"


def cancel_requested(trial_config: Mapping[str, Any]) -> bool:
    """True once the trial's configuration was pruned or failed (poll in FoldHooks.should_stop)."""
    marker = trial_config.get("cancel_marker")
    return bool(marker) and Path(marker).exists()


# --------------------------------------------------------------------------------- storage
def storage_url(cfg: ExperimentConfig, out_dir: str | Path) -> str:
    """The studies' storage: `search.storage` (URL or journal path) or OUT/search/study.journal."""
    spec = cfg.search.storage if cfg.search is not None else None
    if not spec:
        return str((Path(out_dir) / "search" / DEFAULT_STORAGE).resolve())
    if "://" in spec:
        return spec
    return str(Path(spec).expanduser().resolve())


def open_storage(url: str) -> Any:
    """An Optuna storage for a journal file path or an RDB URL (ConfigError when unusable)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as exc:
            raise ConfigError(
                f"search.storage: {url!r} needs sqlalchemy ({exc}); pip install sqlalchemy, or "
                "give a journal file path instead"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any driver error is the user's URL
            raise ConfigError(f"search.storage: cannot open {url!r} ({exc})") from None
    path = Path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise ConfigError(f"search.storage: cannot use journal file {path} ({exc})") from None


def study_name(cfg: ExperimentConfig, variant: str) -> str:
    return f"{cfg.name}/{variant}"


def directions(cfg: ExperimentConfig) -> list[str]:
    assert cfg.search is not None
    return ["maximize"] + ["minimize"] * len(cfg.search.extra_objectives)


def _fold_attr(index: int) -> str:
    return f"fold_{index:03d}"


def val_labels(result: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """(val_true, val_pred) of a fold trial's final result; nothing else is looked at.

    Reads `val_true`/`val_pred`, or else the val rows (split == "val") of a `predictions` dict of
    columns (nested, or flattened to `predictions/split` ... as Tune passes results to searchers).
    ValueError when neither is there or they do not match.
    """
    if "val_true" in result or "val_pred" in result:
        y_true = _labels(result.get("val_true"), "val_true")
        y_pred = _labels(result.get("val_pred"), "val_pred")
    elif isinstance(result.get("predictions"), Mapping) or "predictions/split" in result:
        # Tune hands searchers flattened results: {"predictions/split": [...], ...}
        table = result.get("predictions") or {
            k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("predictions/")
        }
        missing = [k for k in ("split", "true", "pred") if k not in table]
        if missing:
            raise ValueError(f"result 'predictions' lacks column(s) {', '.join(missing)}")
        rows = [i for i, s in enumerate(table["split"]) if s == "val"]
        y_true = _labels([table["true"][i] for i in rows], "predictions.true (val rows)")
        y_pred = _labels([table["pred"][i] for i in rows], "predictions.pred (val rows)")
    else:
        raise ValueError("result has neither 'val_true'/'val_pred' nor a 'predictions' table")
    if len(y_true) != len(y_pred):
        raise ValueError(f"val_true has {len(y_true)} labels, val_pred {len(y_pred)}")
    return y_true, y_pred


def _labels(value: Any, key: str) -> list[int]:
    if value is None:
        raise ValueError(f"result has no '{key}'")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"result '{key}' must be a flat list of class indices")
    integral = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    )
    if arr.size and not integral:
        raise ValueError(f"result '{key}' must hold integer class indices")
    return [int(v) for v in arr.tolist()]


def _model_stats(cfg: ExperimentConfig) -> dict[str, Any]:
    """params / gflops of the configuration's model, built on the meta device (~0.1 s).

    Building it also runs the model's cross-field checks (attention_reduction vs merge_channels,
    msmh_scales vs recurrent_units, ...), so an impossible combination fails before any fold runs.
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

    See the module docstring for the trial config, the result keys and resume semantics.
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
        return self._out / "search" / "cancelled" / f"{variant}__c{number:04d}"

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


# ---------------------------------------------------------------------------------- summary
def _best(study: Any, multi: bool) -> Any | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pool = study.best_trials if multi else [study.best_trial]
    return max(pool, key=lambda t: (t.values[0], -t.number))


def _plan_holdout(out: Path) -> dict[str, list[str]]:
    """The held-out subjects per variant as the run's plan.json recorded them (empty if none)."""
    path = out / "plan.json"
    if not path.exists():
        return {}
    variants = json.loads(path.read_text()).get("variants", {})
    return {v: list(info.get("holdout_subjects") or []) for v, info in variants.items()}


def write_search_summary(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    variants: Sequence[str] | None = None,
    holdout: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Write OUT/search/{best.json, summary.csv, summary.md} (and holdout.yaml) from the studies.

    The best configuration per variant is chosen on the inner-validation objective only. Test
    numbers come only from the held-out subjects (`holdout`: variant → subjects, default the
    run's plan.json), which no search fold contains: once every variant's search is finished,
    OUT/search/holdout.yaml is written (see `holdout_raw`), and the pooled test metrics of its
    evaluation run (OUT/{name}-holdout/summary.csv) are reported when it has run. The search
    folds' own test predictions are never summarised: their validation subjects are other
    folds' test subjects, so the test subjects' labels helped choose the configuration.
    Returns the best.json content.
    """
    import optuna

    if cfg.search is None:
        raise ConfigError("search: this sweep has no `search` section")
    out = Path(out_dir).expanduser().resolve()
    url = storage_url(cfg, out)
    storage = open_storage(url)
    multi = bool(cfg.search.extra_objectives)
    metric = cfg.search.objective.metric
    names = [metric] + list(cfg.search.extra_objectives)
    chosen = list(variants) if variants is not None else list(cfg.variants)
    held = {v: list(s) for v, s in (holdout if holdout is not None else _plan_holdout(out)).items()}
    best_doc: dict[str, Any] = {
        "objective": {
            "metric": metric,
            "on": cfg.search.objective.on,
            "values": names,
            "directions": directions(cfg),
        },
        "storage": url,
        "holdout": {},
        "variants": {},
    }
    rows: list[dict[str, Any]] = []
    for v in chosen:
        try:
            study = optuna.load_study(study_name=study_name(cfg, v), storage=storage)
        except KeyError:
            best_doc["variants"][v] = {"configs": 0, "states": {}, "finished": False, "best": None}
            continue
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
            row = {"variant": v, "config_id": t.number, "state": t.state.name}
            for j, name in enumerate(names):
                complete = t.state.name == "COMPLETE" and t.values is not None
                row[name] = t.values[j] if complete else None
            row["params"] = t.user_attrs.get("params")
            row["gflops"] = t.user_attrs.get("gflops")
            row["overrides"] = t.user_attrs.get("overrides", json.dumps(t.params, sort_keys=True))
            row["folds_done"] = sum(1 for k in t.user_attrs if k.startswith("fold_"))
            row["reason"] = t.user_attrs.get("fail_reason") or t.user_attrs.get("prune_reason")
            rows.append(row)
        best = _best(study, multi)
        running = counts.get("running", 0)
        entry: dict[str, Any] = {
            "configs": len(trials),
            "states": counts,
            # every budgeted configuration asked and told: an interrupted search says so
            "finished": len(trials) >= cfg.search.trials and running == 0,
            "best": None,
        }
        if best is not None:
            entry["best"] = {
                "config_id": best.number,
                "overrides": json.loads(best.user_attrs.get("overrides", "{}")),
                "values": dict(zip(names, best.values)),
                "val_pooled": best.user_attrs.get("val_pooled"),
                "folds": list(best.user_attrs.get("folds", [])),
            }
            if multi:
                entry["pareto_front"] = [
                    {"config_id": t.number, "values": dict(zip(names, t.values))}
                    for t in sorted(study.best_trials, key=lambda t: t.number)
                ]
        best_doc["variants"][v] = entry
    best_doc["holdout"] = _holdout_section(cfg, out, best_doc["variants"], held)
    folder = out / "search"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "best.json").write_text(json.dumps(best_doc, indent=2, default=_json_default) + "\n")
    extra = [c for c in ("params", "gflops") if c not in names]
    columns = ["variant", "config_id", "state", *names, *extra, "overrides", "folds_done", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    table.to_csv(folder / "summary.csv", index=False)
    (folder / "summary.md").write_text(_markdown(best_doc, table))
    return best_doc


# -------------------------------------------------------------------------------- hold-out
def holdout_name(cfg: ExperimentConfig) -> str:
    """Name of the hold-out evaluation sweep (its results: OUT/{name})."""
    return f"{cfg.name}-holdout"


def holdout_dir(cfg: ExperimentConfig, out_dir: str | Path) -> Path:
    """Results folder of the hold-out evaluation: inside the search's own folder."""
    return Path(out_dir).expanduser().resolve() / holdout_name(cfg)


def holdout_protocol(vcfg: ExperimentConfig, subjects: Sequence[str]) -> dict[str, Any]:
    """LOSO over the whole table restricted to the held-out subjects' folds: each fold trains on
    every other subject (development and other held-out ones). Selection as the variant has it;
    validation subjects only where that selection needs them (inner_val)."""
    selection = vcfg.protocol.selection
    return {
        "split": "megc2019" if vcfg.data.dataset == "megc2019" else "loso",
        "selection": selection,
        "val_subjects": vcfg.protocol.val_subjects if selection == "inner_val" else 0,
        "folds": list(subjects),
    }


def holdout_raw(
    cfg: ExperimentConfig,
    best: Mapping[str, Mapping[str, Any]],
    subjects: Mapping[str, Sequence[str]],
    out_dir: str | Path,
) -> dict[str, Any]:
    """The hold-out evaluation as an ablation sweep (a raw config mapping).

    The base config without `search`, named `{name}-holdout`, results in OUT/{name}-holdout; one
    variant per searched variant in `best` (variant → its best configuration's overrides) = the
    variant's own overrides (less `protocol.*`) + those overrides; folds = that variant's held-out
    subjects (`subjects`). Protocol keys a variant needs beyond the base's are its overrides.
    """
    if not best:
        raise ConfigError("search: no variant has a best configuration to evaluate")
    first = next(iter(best))
    base = copy.deepcopy(cfg.raw)
    base.pop("search", None)
    base["name"] = holdout_name(cfg)
    base["output"] = str(Path(out_dir).expanduser().resolve())
    base_protocol = holdout_protocol(variant_config(cfg, first), subjects[first])
    base["protocol"] = {**(base.get("protocol") or {}), **base_protocol}
    ablations: dict[str, dict[str, Any]] = {}
    for v, overrides in best.items():
        own = {k: x for k, x in cfg.ablations[v].items() if k.split(".")[0] != "protocol"}
        merged: dict[str, Any] = {**own, **dict(overrides)}
        protocol = holdout_protocol(variant_config(cfg, v), subjects[v])
        for key, value in protocol.items():
            if value != base_protocol[key]:
                merged[f"protocol.{key}"] = value
        ablations[v] = merged
    base["ablations"] = ablations
    return base


def _holdout_header(cfg: ExperimentConfig, path: Path, skipped: Sequence[str]) -> str:
    lines = [
        f"# Generated by the search {cfg.name!r} (mer.sweep.search): the hold-out evaluation.",
        "# Each variant = the searched variant with its best configuration (chosen on the search",
        "# folds' inner validation only), tested LOSO on the held-out subjects, which are in no",
        "# search fold: the search never saw them. Each fold trains on every other subject.",
        "# The search runs it at its end unless search.evaluate_holdout is false; by hand:",
        f"#   python run_sweep.py {path} [--resume]",
        "# Regenerated by each run of the search: edit a copy, not this file.",
    ]
    if skipped:
        lines.append(f"# Not evaluated (no completed configuration): {', '.join(skipped)}")
    return "\n".join(lines) + "\n"


def _write_holdout_config(
    cfg: ExperimentConfig,
    out: Path,
    entries: Mapping[str, Mapping[str, Any]],
    held: Mapping[str, Sequence[str]],
) -> tuple[Path, dict[str, Any]]:
    """OUT/search/holdout.yaml (checked by loading it back); returns its path and raw mapping."""
    import yaml

    from mer.config import load_config

    best = {v: e["best"]["overrides"] for v, e in entries.items() if e.get("best")}
    raw = holdout_raw(cfg, best, held, out)
    path = out / "search" / HOLDOUT_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    skipped = [v for v in entries if v not in best]
    text = _holdout_header(cfg, path, skipped) + yaml.safe_dump(raw, sort_keys=False)
    path.write_text(text)
    load_config(path)  # what the evaluation (or the user) will run must load
    return path, raw


def _holdout_results(
    hdir: Path, variant: str, expected: Mapping[str, Any], subjects: Sequence[str]
) -> dict[str, Any]:
    """Pooled metrics of one variant from the hold-out evaluation's own summary files."""
    summary, plan_path = hdir / "summary.csv", hdir / "plan.json"
    if not summary.exists() or not plan_path.exists():
        return {"available": False, "reason": f"not evaluated yet (no results in {hdir})"}
    planned = json.loads(plan_path.read_text()).get("variants", {}).get(variant)
    table = pd.read_csv(summary)
    rows = table[table["variant"].astype(str) == variant]
    if planned is None or rows.empty:
        return {"available": False, "reason": f"variant {variant} not in {hdir}"}
    same = json.loads(json.dumps(planned.get("overrides"), sort_keys=True)) == json.loads(
        json.dumps(dict(expected), sort_keys=True, default=_json_default)
    )
    folds = sorted({f["name"] for fs in planned.get("folds", {}).values() for f in fs})
    if not same or folds != sorted(subjects):
        return {
            "available": False,
            "reason": f"{hdir} evaluated other overrides or subjects than this search's best; "
            "rerun it (python run_sweep.py OUT/search/holdout.yaml --overwrite)",
        }
    row = rows.iloc[0]
    if pd.isna(row.get("uf1_mean")):
        return {"available": False, "reason": f"no finished hold-out fold in {hdir}"}
    res: dict[str, Any] = {"available": True, "note": HOLDOUT_NOTE}
    for m in ("uf1", "uar", "acc"):
        res[m] = float(row[f"{m}_mean"])
        if not pd.isna(row.get(f"{m}_std")):
            res[f"{m}_std"] = float(row[f"{m}_std"])
    res.update(
        seeds=int(row["seeds"]),
        folds_done=int(row["folds_done"]),
        folds_total=int(row["folds_total"]),
        complete=bool(row["complete"]),
        oracle=bool(row["oracle"]),
    )
    seeds_path = hdir / "summary_seeds.csv"
    if seeds_path.exists():
        per_seed = pd.read_csv(seeds_path)
        mine = per_seed[per_seed["variant"].astype(str) == variant]
        if "n_test" in mine and len(mine) and not pd.isna(mine["n_test"].iloc[0]):
            res["n_test"] = int(mine["n_test"].iloc[0])
    return res


def _holdout_section(
    cfg: ExperimentConfig,
    out: Path,
    entries: dict[str, dict[str, Any]],
    held: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """best.json's `holdout`: the subjects, the evaluation config and, per variant (in
    `entries[v]["holdout"]`), the evaluation's pooled test metrics or why there are none."""
    assert cfg.search is not None
    n = int(cfg.search.holdout_subjects)
    if n == 0:
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": "no held-out subjects"}
        return {"n": 0, "subjects": [], "note": NO_HOLDOUT_NOTE}
    subjects = next((list(s) for v, s in held.items() if v in entries and s), [])
    distinct = {tuple(held[v]) for v in entries if held.get(v)}
    if len(distinct) > 1:  # variants on different data: their held-out scores are not comparable
        log.warning(
            "search: variants hold out different subjects (%s); their held-out scores are not "
            "comparable",
            "; ".join(f"{v}: {', '.join(held[v])}" for v in entries if held.get(v)),
        )
        subjects = sorted({s for group in distinct for s in group})
    if not subjects or any(not held.get(v) for v in entries):
        why = f"held-out subjects unknown (no plan.json in {out})"
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": why}
        return {"n": n, "subjects": subjects, "note": HOLDOUT_NOTE, "reason": why}
    hdir = holdout_dir(cfg, out)
    section: dict[str, Any] = {
        "n": len(subjects),
        "subjects": subjects,
        "note": HOLDOUT_NOTE,
        "evaluate": bool(cfg.search.evaluate_holdout),
        "config": None,
        "results": str(hdir),
    }
    finished = all(e["finished"] for e in entries.values())
    if not finished or not any(e.get("best") for e in entries.values()):
        why = "the search is not finished" if not finished else "no completed configuration"
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": f"not evaluated: {why}"}
        return section
    path, raw = _write_holdout_config(cfg, out, entries, held)
    section["config"] = str(path)
    for v, e in entries.items():
        if not e.get("best"):
            e["holdout"] = {"available": False, "reason": "no completed configuration"}
            continue
        res = _holdout_results(hdir, v, raw["ablations"][v], held[v])
        e["holdout"] = {"subjects": list(held[v]), **res}
    return section


def evaluate_holdout(cfg: ExperimentConfig, opts: Any, path: Path) -> int:
    """Run OUT/search/holdout.yaml as a normal ablation sweep (on the Ray the search used).

    With --resume it continues an interrupted evaluation (finished folds are not rerun).
    """
    import dataclasses

    from mer.config import load_config
    from mer.sweep.runner import output_dir, run_ablation

    hcfg = load_config(path)
    hout = output_dir(hcfg, None)
    resume = bool(opts.resume) and (hout / "config.yaml").exists()
    argv = ["run_sweep.py", str(path)] + (["--resume"] if resume else [])
    hopts = dataclasses.replace(opts, out=hout, resume=resume, overwrite=False, argv=argv)
    trials = len(hcfg.variants) * len(hcfg.protocol.folds) * len(hcfg.seeds)
    log.info(
        "hold-out evaluation: best configuration of %s on %d held-out subject(s), %d trial(s); "
        "results in %s",
        ", ".join(hcfg.variants),
        len(hcfg.protocol.folds),
        trials,
        hout,
    )
    return run_ablation(hcfg, hopts)


# ------------------------------------------------------------------------------- search mode
def run_search(cfg: ExperimentConfig, opts: Any) -> int:
    """Search mode end to end on the runner's Session (opts: mer.sweep.runner.RunOptions), then
    the hold-out evaluation (`evaluate_holdout`) when the search is finished.

    Exit status 0 when every variant's search used its budget, has a completed configuration and
    (if run) its hold-out evaluation is complete; 1 otherwise (continue with --resume).
    """
    from mer.sweep.runner import open_session

    if cfg.search is None:
        raise ConfigError("search: this sweep has no `search` section (search mode needs one)")
    session = open_session(cfg, opts)
    held_status = 0
    try:
        seed = int(cfg.seeds[0])
        plan = session.plan
        folds = {v: [f.name for f in vp.folds[seed]] for v, vp in plan.variants.items()}
        held = {v: list(vp.holdout) for v, vp in plan.variants.items()}
        searcher = FoldFanoutSearcher(cfg, folds, session.out, variants=list(folds))
        log.info(
            "search: %d configuration(s) per variant x %s fold(s), %d open at a time; "
            "%d subject(s) held out; study storage %s",
            cfg.search.trials,
            "/".join(str(len(f)) for f in folds.values()),
            cfg.search.concurrent_configs,
            max((len(s) for s in held.values()), default=0),
            searcher.storage,
        )
        try:
            session.run(search_alg=searcher, num_samples=-1)
        finally:
            # Not Session.finish(): its ablation summary would list every variant as unrun.
            session.tracker.close()
        doc = write_search_summary(cfg, session.out, variants=list(folds), holdout=held)
        config = doc["holdout"].get("config")
        if config and cfg.search.evaluate_holdout:
            session.data_refs.clear()  # the evaluation puts its own copy in the object store
            held_status = evaluate_holdout(cfg, opts, Path(config))
            doc = write_search_summary(cfg, session.out, variants=list(folds), holdout=held)
    finally:
        if session.started_ray:
            import ray

            ray.shutdown()
    print()
    print(format_search_summary(doc))
    print(
        f"\nresults: {session.out / 'search'} (best.json, summary.md, summary.csv, "
        f"{DEFAULT_STORAGE if not cfg.search.storage else searcher.storage})"
    )
    unfinished = [v for v, e in doc["variants"].items() if not e["finished"]]
    if unfinished:
        print(
            f"INCOMPLETE: the search of {', '.join(unfinished)} stopped before its "
            f"{cfg.search.trials} configuration(s) were done (the summary above is partial); "
            "continue it with --resume"
        )
        return 1
    if held_status:
        print("INCOMPLETE: the hold-out evaluation has failed or missing folds; --resume retries")
        return 1
    return 0 if all(e.get("best") for e in doc["variants"].values()) else 1


def _metrics_text(res: Mapping[str, Any]) -> str:
    def one(m: str) -> str:
        sd = res.get(f"{m}_std")
        return f"{m} {_fmt(res[m])}" + (f" ± {_fmt(sd)}" if sd is not None else "")

    text = ", ".join(one(m) for m in ("uf1", "uar", "acc"))
    folds = f"{res['folds_done']}/{res['folds_total']} folds"
    if res.get("n_test") is not None:
        folds += f", {res['n_test']} clips"
    if res.get("seeds", 1) > 1:
        folds += f", mean over {res['seeds']} seeds"
    if not res.get("complete", True):
        folds += ", INCOMPLETE"
    return f"{text} ({folds})"


def _holdout_lines(doc: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    """What the summary says about a variant's test estimate (console and Markdown alike)."""
    section = doc.get("holdout") or {}
    if not section.get("n"):
        return []
    res = entry.get("holdout") or {}
    n = len(res.get("subjects") or section.get("subjects") or [])
    if res.get("available"):
        return [f"held-out test, LOSO on {n} subject(s) ({HOLDOUT_NOTE}): {_metrics_text(res)}"]
    line = f"held-out test: {res.get('reason', 'not available')}"
    if section.get("config") and "not evaluated yet" in str(res.get("reason")):
        line += f"; run python run_sweep.py {section['config']}"
    return [line]


def _search_scope(doc: Mapping[str, Any]) -> str:
    section = doc.get("holdout") or {}
    if not section.get("n"):
        return NO_HOLDOUT_NOTE
    per_variant = {
        v: tuple((e.get("holdout") or {}).get("subjects") or ()) for v, e in doc["variants"].items()
    }
    groups = {s for s in per_variant.values() if s}
    if len(groups) > 1:
        held = "; ".join(f"{v}: {', '.join(s)}" for v, s in per_variant.items() if s)
        text = f"held out of the search, per variant (not comparable across variants): {held}"
    else:
        text = (
            f"held out of the search: {section['n']} subject(s) ({', '.join(section['subjects'])})"
        )
    evaluated = any((e.get("holdout") or {}).get("available") for e in doc["variants"].values())
    if evaluated:
        text += (
            "; the held-out metrics above are theirs alone, from LOSO folds training on every "
            "other subject. Choose between variants on the inner-validation objective: picking "
            "the variant with the best held-out score would make them a selection set"
        )
    return text


def format_search_summary(doc: Mapping[str, Any]) -> str:
    """A few lines per variant: best configuration, its val objective, its held-out test metrics."""
    obj = doc["objective"]
    lines = [f"search: best configuration per variant by pooled {obj['metric']} on {obj['on']}"]
    for v, entry in doc["variants"].items():
        best = entry.get("best")
        states = ", ".join(f"{k} {n}" for k, n in sorted((entry.get("states") or {}).items()))
        if not entry.get("finished"):
            states += "; INCOMPLETE"
        if best is None:
            lines.append(f"  {v}: no completed configuration ({states or 'none run'})")
            continue
        vals = ", ".join(f"{k} {_fmt(x)}" for k, x in best["values"].items())
        lines.append(
            f"  {v}: config {best['config_id']} ({states}): val {vals}; "
            f"{json.dumps(best['overrides'], sort_keys=True)}"
        )
        lines += [f"    {line}" for line in _holdout_lines(doc, entry)]
    lines.append(_search_scope(doc))
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4f}"
    return "—" if value is None else str(value)


def _markdown(best_doc: Mapping[str, Any], table: pd.DataFrame) -> str:
    obj = best_doc["objective"]
    lines = [f"# Search summary ({obj['metric']} on {obj['on']}, pooled over folds)", ""]
    lines += [_search_scope(best_doc), ""]
    for v, entry in best_doc["variants"].items():
        lines.append(f"## {v}" + ("" if entry["finished"] else " (INCOMPLETE: search interrupted)"))
        states = ", ".join(f"{k} {n}" for k, n in sorted(entry.get("states", {}).items()))
        lines.append(f"{entry['configs']} configuration(s): {states or 'none'}")
        best = entry.get("best")
        if best is None:
            lines += ["", "No completed configuration.", ""]
            continue
        vals = ", ".join(f"{k} {_fmt(x)}" for k, x in best["values"].items())
        lines += [
            "",
            f"Best: config {best['config_id']} — {vals} (inner validation)",
            f"Overrides: `{json.dumps(best['overrides'], sort_keys=True)}`",
        ]
        lines += [line[0].upper() + line[1:] for line in _holdout_lines(best_doc, entry)]
        lines.append("")
    if not table.empty:
        cols = list(table.columns)
        lines += [
            "## All configurations (inner-validation objective)",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        for rec in table.itertuples(index=False):
            lines.append("| " + " | ".join(_fmt(x) for x in rec) + " |")
        lines.append("")
    return "\n".join(lines)
