"""The `search.space` syntax: parsed, validated against the config, sampled through Optuna.

One entry per dotted config key; each entry names exactly one distribution::

    search:
      space:
        train.lr:         {loguniform: [1.0e-4, 3.0e-3]}
        model.dropout:    {uniform: [0.1, 0.6]}            # optional `step: 0.05`
        train.batch_size: {int: [4, 16], step: 4}          # optional `step: N` or `log: true`
        model.recurrent:  {choice: [none, gru, lstm]}      # any YAML scalars; lists allowed too
        model.recurrent_units:
          int: [64, 512]
          log: true
          when: {model.recurrent: [gru, lstm]}             # conditional parameter

`when` maps dotted keys to the values (a list, or one value) for which the parameter is sampled;
with several keys all must match. The key a condition reads is either a `choice` parameter of the
same space (its values must be among that choice's options: a typo is an error, not a parameter that
silently never activates) or a config key outside the space, which conditions on the ablation
variant's fixed value. A condition reads the value the trial's config will have: the sampled value
when the key is sampled, the variant's config value otherwise. An inactive parameter is neither
sampled nor overridden, so the variant's value stays (and Optuna records no value for it).

Keys that pick the data, the classes, the folds or the run itself cannot be searched
(`protocol.*`, `search.*`, `model.num_classes`, ...): a fold-wise objective over a search that
changes the folds would compare different things. No `data.*` key either: a variant's data is
prepared once, before the search, and every configuration trains on it, so a searched data key
would be recorded but change nothing (make data choices ablation variants instead). On a variant
whose AU regions come from ground truth (`data.regions.policy: au_oracle`), `model.branches` cannot
be searched: it switches between oracle input (dual) and label-free input (single) inside one
study (PROTOCOL.md §4.3); fix it per variant instead. Each bound and each choice is checked
by applying it to the base config, so a value the config would reject fails at load time with the
space key, not hours into a sweep; a value that only a rule across two searched keys rejects
(merge_channels 4 with attention_reduction 8, when both are searched) passes if one value of the
other key makes it valid, and a configuration drawing the bad pair fails when asked. A float
distribution on an integer config field is an error (use `int`).

Every failure is a ConfigError naming `search.space.KEY`. `check_search_config` runs all of this
on a loaded config (the base and each ablation variant), as the search will, so that whatever
runs a config with `search:` (run_sweep.py, `mer train`) refuses a bad space before preparing data
or starting Ray; `load_search_config` is `load_config` followed by it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mer.config import ExperimentConfig, get_dotted, load_config, variant_config, with_overrides
from mer.errors import ConfigError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

KINDS = ("uniform", "loguniform", "int", "choice")
_OPTIONS = {"step", "log", "when"}
# Whole sections / exact keys a search may not change (see the module docstring).
FORBIDDEN_PREFIXES = (
    "protocol",
    "search",
    "ablations",
    "seeds",
    "resources",
    "tracking",
    "name",
    "output",
    "raw",
    "data",
    "model.num_classes",
    "train.device",
)
DATA_NOTE = (
    "data is prepared once per variant before the search and every configuration trains on it, "
    "so a searched data key would change nothing; make data choices ablation variants instead"
)
RUN_NOTE = "it changes the classes, folds or the run itself, so fold scores would not be comparable"
_SCALARS = (str, int, float, bool, type(None))


def _covers(prefix: str, key: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def check_space_keys(space: Mapping[str, Any]) -> None:
    """ConfigError for a key no search may change (see the module docstring)."""
    for key in space:
        key = str(key)
        bad = next((p for p in FORBIDDEN_PREFIXES if _covers(p, key)), None)
        if bad is not None:
            why = DATA_NOTE if bad == "data" else RUN_NOTE
            raise ConfigError(f"search.space.{key}: {bad} cannot be searched ({why})")


def check_variant_space(
    space: Mapping[str, Any], vcfg: ExperimentConfig, fixed: Mapping[str, Any]
) -> None:
    """ConfigError for a key this variant may not search: `model.branches` on au_oracle regions.

    Switching branches there switches the oracle tag per configuration (dual reads ground-truth
    AU crops, single does not), so one study would rank oracle against label-free results and
    the trial's files could not carry one consistent tag. Keys the variant fixes are not searched
    in its study (`SearchSpace.for_variant`), so they pass.
    """
    key = "model.branches"
    searched = any(_covers(str(k), key) or _covers(key, str(k)) for k in space)
    fixed_here = any(_covers(str(k), key) or _covers(key, str(k)) for k in fixed)
    if searched and not fixed_here and vcfg.data.regions.policy == "au_oracle":
        raise ConfigError(
            f"search.space.{key}: cannot be searched with data.regions.policy au_oracle (dual "
            "branches read ground-truth AU crops, an oracle input, single ones do not; one study "
            "would mix oracle and label-free results, PROTOCOL.md §4.3); fix model.branches per "
            "ablation variant, or use a label-free region policy (all, fixed)"
        )


@dataclass(frozen=True)
class Param:
    """One searched config key. `when` holds (key, allowed values) pairs, all required."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    encoded: bool = False  # choices hold lists/mappings: Optuna sees them as JSON strings

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter from an Optuna trial; returns the config value."""
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step)
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        options = [self.encode(c) for c in self.choices]
        return self.decode(trial.suggest_categorical(self.key, options))

    def encode(self, value: Any) -> Any:
        return json.dumps(value, sort_keys=True) if self.encoded else value

    def decode(self, value: Any) -> Any:
        """An Optuna parameter value back to the config value (lists travel as JSON)."""
        return json.loads(value) if self.encoded else value

    def describe(self) -> str:
        if self.kind == "choice":
            body = f"choice {list(self.choices)}"
        else:
            body = f"{self.kind} [{self.low}, {self.high}]"
            if self.step:
                body += f" step {self.step}"
            if self.log and self.kind == "int":
                body += " log"
        if self.when:
            body += " when " + " and ".join(f"{k} in {list(v)}" for k, v in self.when)
        return body


@dataclass(frozen=True)
class SearchSpace:
    """Parameters in sampling order (every condition's parameter before its dependants)."""

    params: tuple[Param, ...] = ()
    dropped: tuple[str, ...] = field(default=())  # keys a variant fixes (see `for_variant`)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    @property
    def conditional(self) -> bool:
        return any(p.when for p in self.params)

    def get(self, key: str) -> Param | None:
        return next((p for p in self.params if p.key == key), None)

    def active(self, param: Param, values: Mapping[str, Any], base: ExperimentConfig) -> bool:
        """Whether `param`'s conditions hold, given the values sampled so far (`values`)."""
        for key, allowed in param.when:
            value = values[key] if key in values else get_dotted(base, key)
            if not any(_same(value, a) for a in allowed):
                return False
        return True

    def sample(self, trial: optuna.Trial, base: ExperimentConfig) -> dict[str, Any]:
        """Dotted overrides for one configuration: active parameters only, in space order."""
        values: dict[str, Any] = {}
        for param in self.params:
            if self.active(param, values, base):
                values[param.key] = param.suggest(trial)
        return values

    def decode_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's `trial.params` as config overrides (JSON-encoded choices decoded)."""
        out = {}
        for key, value in params.items():
            param = self.get(key)
            out[key] = param.decode(value) if param is not None else value
        return out

    def for_variant(self, fixed: Mapping[str, Any]) -> SearchSpace:
        """The space without keys an ablation variant fixes (the variant's value wins).

        A variant is defined by the keys it sets; searching one of them would undo the ablation.
        Conditions on a dropped key then read the variant's fixed value.
        """
        drop = [
            p.key for p in self.params if any(_covers(k, p.key) or _covers(p.key, k) for k in fixed)
        ]
        if not drop:
            return self
        kept = []
        for p in self.params:
            if p.key in drop:
                continue
            kept.append(p)
        return SearchSpace(tuple(kept), tuple(drop))


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (YAML `true` is not the integer 1)."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{what}: expected a number, got {value!r}")
    try:
        out = float(value)  # PyYAML reads `1e-3` (no dot) as a string
    except ValueError:
        raise ConfigError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{what}: expected a finite number, got {value!r}")
    return out


def _bounds(spec: Any, what: str, integer: bool) -> tuple[Any, Any]:
    if not isinstance(spec, (list, tuple)) or len(spec) != 2:
        raise ConfigError(f"{what}: expected two bounds [low, high], got {spec!r}")
    lo, hi = (_number(v, what) for v in spec)
    if integer:
        for v in spec:
            if isinstance(v, bool) or not float(_number(v, what)).is_integer():
                raise ConfigError(f"{what}: int bounds must be integers, got {spec!r}")
        lo, hi = int(lo), int(hi)
    if not lo < hi:
        raise ConfigError(f"{what}: expected low < high, got {spec!r}")
    return lo, hi


def _parse_param(key: str, spec: Any) -> Param:
    what = f"search.space.{key}"
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{what}: expected a mapping such as {{uniform: [0.1, 0.5]}}, got {spec!r}"
        )
    kinds = [k for k in spec if k in KINDS]
    unknown = [k for k in spec if k not in KINDS and k not in _OPTIONS]
    if unknown:
        raise ConfigError(
            f"{what}: unknown field(s) {', '.join(map(str, unknown))} (expected one of "
            f"{', '.join(KINDS)} and optionally step, log, when)"
        )
    if len(kinds) != 1:
        raise ConfigError(
            f"{what}: expected exactly one of {', '.join(KINDS)}, got "
            f"{', '.join(kinds) if kinds else 'none'}"
        )
    kind = kinds[0]
    when = _parse_when(key, spec.get("when"))
    step = spec.get("step")
    log_flag = spec.get("log", False)
    if not isinstance(log_flag, bool):
        raise ConfigError(f"{what}.log: expected true/false, got {log_flag!r}")
    if log_flag and kind != "int":
        raise ConfigError(f"{what}.log: only int takes log (use loguniform for floats)")
    if step is not None and kind not in ("uniform", "int"):
        raise ConfigError(f"{what}.step: only uniform and int take a step")
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{what}: choice expects a non-empty list, got {choices!r}")
        for i, a in enumerate(choices):
            if any(_same(a, b) for b in choices[:i]):
                raise ConfigError(f"{what}: choice lists {a!r} twice")
        encoded = not all(isinstance(c, _SCALARS) for c in choices)
        return Param(key, kind, choices=tuple(choices), when=when, encoded=encoded)
    lo, hi = _bounds(spec[kind], f"{what}.{kind}", integer=kind == "int")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{what}.loguniform: bounds must be > 0, got {spec[kind]!r}")
    if step is not None:
        step_v = _number(step, f"{what}.step")
        if kind == "int" and (isinstance(step, bool) or not step_v.is_integer()):
            raise ConfigError(f"{what}.step: expected an integer step, got {step!r}")
        if step_v <= 0 or step_v > hi - lo:
            raise ConfigError(f"{what}.step: expected 0 < step <= high - low, got {step!r}")
        if log_flag and step_v != 1:
            raise ConfigError(f"{what}: an int parameter takes either log or step, not both")
        step = int(step_v) if kind == "int" else step_v
    return Param(key, kind, low=lo, high=hi, step=step, log=log_flag, when=when)


def _parse_when(key: str, when: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    what = f"search.space.{key}.when"
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(
            f"{what}: expected a mapping of config key to allowed values, e.g. "
            f"{{model.recurrent: [gru, lstm]}}, got {when!r}"
        )
    out = []
    for cond_key, allowed in when.items():
        cond_key = str(cond_key)
        if cond_key == key:
            raise ConfigError(f"{what}: a parameter cannot depend on itself")
        values = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
        if not values:
            raise ConfigError(f"{what}.{cond_key}: expected at least one value")
        out.append((cond_key, values))
    return tuple(out)


def _order(params: dict[str, Param]) -> list[Param]:
    """Topological order (conditions first), stable in the written order; cycles are errors."""
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(key: str, chain: list[str]) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            cycle = " -> ".join(chain[chain.index(key) :] + [key])
            raise ConfigError(f"search.space.{key}.when: conditions form a cycle ({cycle})")
        state[key] = 1
        for cond_key, _ in params[key].when:
            if cond_key in params:
                visit(cond_key, chain + [key])
        state[key] = 2
        done.append(key)

    for key in params:
        visit(key, [])
    return [params[k] for k in done]


def _check_value(base: ExperimentConfig, key: str, value: Any, params: dict[str, Param]) -> None:
    """The config's ConfigError for `key: value` on `base`, unless one value of another searched
    parameter makes it valid: a rule across two searched keys (model.merge_channels against
    model.attention_reduction) is a combination the search may or may not draw, and a draw that
    breaks it fails when asked (counted toward the trial budget, before any fold runs)."""
    try:
        with_overrides(base, {key: value})
        return
    except ConfigError as exc:
        error = exc
    for other in params.values():
        if other.key == key:
            continue
        partners = list(other.choices) if other.kind == "choice" else [other.low, other.high]
        for partner in partners:
            try:
                with_overrides(base, {key: value, other.key: partner})
                return
            except ConfigError:
                continue
    raise error


def _check_against(param: Param, base: ExperimentConfig, params: dict[str, Param]) -> None:
    """Apply bounds / each choice to the base config so the config's own rules reject bad values."""
    what = f"search.space.{param.key}"
    current = get_dotted(base, param.key)
    if (
        param.kind in ("uniform", "loguniform")
        and isinstance(current, int)
        and not isinstance(current, bool)
    ):
        raise ConfigError(
            f"{what}: {param.key} is an integer setting (currently {current}); use "
            f"{{int: [low, high]}} instead of {param.kind}"
        )
    values = list(param.choices) if param.kind == "choice" else [param.low, param.high]
    for value in values:
        try:
            _check_value(base, param.key, value, params)
        except ConfigError as exc:
            raise ConfigError(f"{what}: value {value!r} is not valid here ({exc})") from None
    for cond_key, allowed in param.when:
        where = f"{what}.when.{cond_key}"
        if cond_key in params:
            parent = params[cond_key]
            if parent.kind != "choice":
                raise ConfigError(
                    f"{where}: a condition must read a choice parameter or a fixed config key; "
                    f"{cond_key} is {parent.kind}"
                )
            bad = [a for a in allowed if not any(_same(a, c) for c in parent.choices)]
            if bad:
                raise ConfigError(
                    f"{where}: {bad[0]!r} is not one of {cond_key}'s choices {list(parent.choices)}"
                )
        else:
            try:
                get_dotted(base, cond_key)
            except ConfigError:
                raise ConfigError(
                    f"{where}: unknown config key '{cond_key}' (conditions read dotted config "
                    "keys such as model.recurrent)"
                ) from None
            for value in allowed:  # a value the key can never take is a typo
                try:
                    _check_value(base, cond_key, value, params)
                except ConfigError as exc:
                    raise ConfigError(
                        f"{where}: {value!r} is not one of {cond_key}'s possible values ({exc})"
                    ) from None


def parse_space(
    space: Mapping[str, Any] | None, base: ExperimentConfig | None = None
) -> SearchSpace:
    """Parse `search.space`; with `base`, also check each key and value against that config."""
    if space is None:
        return SearchSpace()
    if not isinstance(space, Mapping):
        raise ConfigError(f"search.space: expected a mapping of dotted keys, got {space!r}")
    check_space_keys(space)
    params: dict[str, Param] = {}
    for key, spec in space.items():
        key = str(key)
        params[key] = _parse_param(key, spec)
    ordered = _order(params)
    if base is not None:
        for param in ordered:
            try:
                get_dotted(base, param.key)
            except ConfigError:
                raise ConfigError(
                    f"search.space.{param.key}: not a config key (space keys are dotted paths such "
                    "as train.lr)"
                ) from None
            _check_against(param, base, params)
    return SearchSpace(tuple(ordered))


def check_search_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """Parse `search.space` as the search will (mer/sweep/search/): the keys no search may change,
    the keys a variant may not search, the space against the base config, then each variant's
    share of it (`SearchSpace.for_variant`) against that variant's config. Returns `cfg`.

    A variant's error starts with `ablations.NAME: `. Without a `search` section: nothing to do.
    """
    if cfg.search is None:
        return cfg
    space = cfg.search.space
    check_space_keys(space)  # data.*, protocol.*, ...: never searchable
    variants = {name: variant_config(cfg, name) for name in cfg.ablations}
    for name, fixed in cfg.ablations.items():
        try:
            check_variant_space(space, variants[name], fixed)
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None
    parsed = parse_space(space, cfg)
    for name, fixed in cfg.ablations.items():
        kept = parsed.for_variant(fixed).keys
        try:
            parse_space({k: space[k] for k in kept}, variants[name])
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None
    return cfg


def load_search_config(path: Any, overrides: list[str] | None = None) -> ExperimentConfig:
    """`load_config` for running: a search space is checked too (errors name the file)."""
    cfg = load_config(path, overrides)
    try:
        return check_search_config(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
