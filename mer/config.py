"""Typed, validated experiment configuration.

A sweep YAML is read into nested dataclasses. Validation is strict because a typo in a sweep that
runs for a day on a cluster must fail in the first second: an unknown key names its full path and
the closest valid key; a wrong type or range names the key and what was expected.

The raw (user-written) mapping is kept beside the typed config so that ablation variants, which are
dotted overrides, are applied to what the user wrote (a variant that switches `model.preset` gets
that preset's defaults, not the base preset's values re-expanded).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import logging
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from mer.errors import ConfigError

log = logging.getLogger(__name__)

AU_CODE = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 43]
DATASETS = ("casme2", "samm", "smic", "casme3", "megc2019", "deception", "videos", "synthetic")


# ----------------------------------------------------------------------------------------- data
@dataclass
class FramesConfig:
    """Which T frames a clip contributes (mer.data.frames).

    `window`: the frames the selection looks at. `annotated`: only onset..offset, which a
    recording holding several expressions needs (CAS(ME)^3: one folder per task, several
    micro-expressions in it); `clip`: the whole media (the original's per-clip folders and
    videos); `auto`: annotated for CAS(ME)^3 (and the synthetic casme3 layout), clip otherwise.
    `onset_apex_offset` always selects inside the annotated window. `skip`: frames dropped at
    the start of the window before selecting (the original's deception input is frames 5-20:
    skip 5, count 16, select first).
    """

    count: int = 30
    select: Literal["motion_topk", "uniform", "first", "onset_apex_offset"] = "motion_topk"
    window: Literal["auto", "annotated", "clip"] = "auto"
    skip: int = 0


@dataclass
class RegionsConfig:
    """Where branch B's input comes from. `au_oracle` reads ground-truth AUs (oracle input)."""

    landmarks: Literal["dlib", "annotated", "none"] = "dlib"
    policy: Literal["au_oracle", "all", "fixed", "none"] = "au_oracle"
    au_codes: list[int] = field(default_factory=lambda: list(AU_CODE))
    margin: float = 0.0
    keep_aspect: bool = False
    no_face: Literal["error", "whole_frame"] = "error"
    upsample: int = 1


@dataclass
class SourceConfig:
    """One dataset's files inside a composite (megc2019): media root and its annotation file."""

    root: str | None = None
    annotations: str | None = None


@dataclass
class SyntheticConfig:
    """Parameters of the generated dataset when `data.dataset: synthetic`."""

    layout: Literal["casme2", "samm", "smic", "casme3", "deception", "videos"] = "casme2"
    subjects: int = 6
    clips: int = 9
    frames: int = 24
    size: int = 96
    seed: int = 0
    intensity: float = 1.0
    # Clips per subject coded "others" (dropped by 3-class schemes); null = the generator's
    # default (one per subject when clips >= 4), 0 = every clip in the three classes.
    others: int | None = None
    # scene: head in its surroundings, face ~60 % of the frame height (CASME II RAW); face: square
    # frames filled by the face, AU motion zoomed with it (CASME II Cropped).
    framing: Literal["scene", "face"] = "scene"


@dataclass
class DataConfig:
    dataset: Literal[
        "casme2", "samm", "smic", "casme3", "megc2019", "deception", "videos", "synthetic"
    ] = "casme2"
    root: str | None = None
    annotations: str | None = None
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    labels: str = "megc3"
    frames: FramesConfig = field(default_factory=FramesConfig)
    size: int = 128
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    video_backend: Literal["decord", "av"] = "decord"
    cache_dir: str = "~/.cache/mer"


# ------------------------------------------------------------------------------------- protocol
@dataclass
class ProtocolConfig:
    split: str = "loso"
    selection: Literal["fixed_epochs", "inner_val", "oracle_test"] = "fixed_epochs"
    val_subjects: int = 0
    folds: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    """Every architectural switch. Defaults are the paper's CASME II configuration."""

    preset: str | None = "casme2"
    in_channels: int = 3
    num_classes: int = 3
    branches: Literal["single", "dual"] = "dual"
    conv_a_channels: int = 32
    conv_a_kernel: int = 5
    conv_b_channels: int = 32
    conv_b_kernel: int = 3
    merge_channels: int = 64
    merge_kernel: int = 3
    pool: int = 3
    attention: Literal["none", "cbam", "ec_cbam", "ec_cbam_sum", "ec_cbam_sequential"] = "ec_cbam"
    attention_reduction: int = 8
    dense: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.5
    dense_out_dropout: float = 0.0  # after the last per-step Linear (deception script: 0.3)
    recurrent: Literal["none", "gru", "lstm"] = "gru"
    recurrent_units: int = 512
    pooling: Literal["msmh", "mha", "msmh_mha", "mean", "last"] = "msmh"
    msmh_scales: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256])
    mha_heads: int = 8
    mha_key_dim: int = 0  # per-head width; 0 = d // mha_heads (Keras scripts: 512)
    mha_causal: bool = False
    head: list[int] = field(default_factory=lambda: [128, 64])
    head_in_dropout: float = 0.0  # before the first head Linear (deception script: 0.3)
    head_dropout: float = 0.0
    leaky_slope: float = 0.2
    init: Literal["keras", "torch"] = "keras"


# ---------------------------------------------------------------------------------------- train
@dataclass
class AugmentConfig:
    flip: bool = False
    rotate: float = 0.0
    brightness: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 8
    lr: float = 1.0e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-7
    lr_step: int = 40
    lr_gamma: float = 0.9
    loss: Literal["wce", "ce"] = "wce"
    class_weights: list[float] | Literal["balanced"] | None = field(
        default_factory=lambda: [0.3, 0.35, 0.35]
    )
    l2: float = 0.01
    scaling: Literal["fixed", "train_stats"] = "fixed"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    # conv3d: cuDNN's 3D kernels; t2d: each stride-1 Conv3d as one Conv2d over time-stacked frames
    # (same function and state dict; mer/training/fastpath.py, measured by bench.throughput)
    conv_impl: Literal["conv3d", "t2d"] = "conv3d"
    compile: bool = False
    eval_every: int = 1
    checkpoint_every: int = 10
    threads: int = 0


# --------------------------------------------------------------------------------------- search
@dataclass
class ObjectiveConfig:
    metric: Literal["uf1", "uar", "acc"] = "uf1"
    on: Literal["inner_val"] = "inner_val"


@dataclass
class SearchConfig:
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    trials: int = 20
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    extra_objectives: list[Literal["params", "gflops"]] = field(default_factory=list)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    pruner: Literal["wilcoxon", "none"] = "wilcoxon"
    pruner_p: float = 0.1  # WilcoxonPruner p-value threshold (larger prunes sooner)
    concurrent_configs: int = 2
    storage: str | None = None
    seed: int = 0
    # Subjects set aside before the search (label-free draw from `seed`): in no search fold, then
    # each variant's best configuration is tested LOSO on them (PROTOCOL.md §4.1). 0: none, and
    # then no clean test estimate of the chosen configuration exists.
    holdout_subjects: int = 0
    evaluate_holdout: bool = True  # run that evaluation at the end of the search


# ------------------------------------------------------------------------------- run management
@dataclass
class ResourcesConfig:
    """Per-trial Ray resources. `wait_for_gpus`: with no GPU node up when the sweep starts, keep
    each trial's GPU share and wait for an autoscaler to start GPU workers (true), or run the
    trials on CPU (false); null: wait when the autoscaler's node types offer GPUs."""

    gpu_per_trial: float = 0.25
    cpu_per_trial: float = 1.0
    max_concurrent: int = 0
    max_failures: int = 2
    wait_for_gpus: bool | None = None


@dataclass
class WandbConfig:
    project: str = "mer"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    tags: list[str] = field(default_factory=list)  # added to every run of the sweep


@dataclass
class TrackingConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ablations: dict[str, dict[str, Any]] = field(default_factory=lambda: {"full": {}})
    search: SearchConfig | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output: str = "results"
    # What the user wrote (after --set overrides): variants are applied to this.
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def variants(self) -> list[str]:
        return list(self.ablations)


_NOT_SERIALISED = {"raw"}
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "data.frames.count": (1, None),
    "data.frames.skip": (0, None),
    "data.size": (8, None),
    "data.regions.margin": (0.0, 1.0),
    "data.regions.upsample": (0, 4),
    "data.synthetic.subjects": (1, None),
    "data.synthetic.clips": (1, None),
    "data.synthetic.frames": (2, None),
    "data.synthetic.size": (32, None),
    "data.synthetic.intensity": (0.0, None),
    "data.synthetic.others": (0, None),
    "protocol.val_subjects": (0, None),
    "model.in_channels": (1, None),
    "model.num_classes": (2, None),
    "model.pool": (1, None),
    "model.conv_a_channels": (1, None),
    "model.conv_a_kernel": (1, None),
    "model.conv_b_channels": (1, None),
    "model.conv_b_kernel": (1, None),
    "model.merge_channels": (1, None),
    "model.merge_kernel": (1, None),
    "model.leaky_slope": (0.0, 1.0),
    "model.dropout": (0.0, 0.99),
    "model.head_dropout": (0.0, 0.99),
    "model.head_in_dropout": (0.0, 0.99),
    "model.dense_out_dropout": (0.0, 0.99),
    "model.mha_key_dim": (0, None),
    "model.attention_reduction": (1, None),
    "model.recurrent_units": (1, None),
    "model.mha_heads": (1, None),
    "train.epochs": (1, None),
    "train.batch_size": (1, None),
    "train.lr": (0.0, None),
    "train.eps": (0.0, None),
    "train.lr_step": (0, None),
    "train.lr_gamma": (0.0, 1.0),
    "train.l2": (0.0, None),
    "train.augment.rotate": (0.0, 45.0),
    "train.augment.brightness": (0.0, 1.0),
    "train.eval_every": (1, None),
    "train.checkpoint_every": (0, None),
    "train.threads": (0, None),
    "search.trials": (1, None),
    "search.concurrent_configs": (1, None),
    "search.pruner_p": (0.0, 1.0),
    "search.holdout_subjects": (0, None),
    "resources.gpu_per_trial": (0.0, None),
    "resources.cpu_per_trial": (0.0, None),
    "resources.max_concurrent": (0, None),
    "resources.max_failures": (0, None),
}
_SPLIT = re.compile(r"^(loso|megc2019|group_kfold:[1-9][0-9]*)$")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans (`on: inner_val` stays the key "on") and
    `1e-3` is a float (YAML 1.1 wants `1.0e-3`). A key written twice in one mapping is an error:
    PyYAML keeps the last silently, so a repeated variant or setting would vanish unnoticed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """ConfigError naming a key that `node` holds twice and both lines (merge keys `<<` excepted:
    overriding merged keys is what they are for)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: PyYAML's own error says so
            continue
        if first is not None:
            raise ConfigError(
                f"duplicate key {key!r} (lines {first} and {line}); the second would silently "
                "replace the first: remove or rename one"
            )
        seen[key] = line


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool",)]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML the way sweep files are meant (see _Loader)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


# ---------------------------------------------------------------------------- generic validation
def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
        item = get_args(tp)[0]
        return f"a list of {plural.get(item) or _type_name(item)}"
    if origin is dict:
        value = get_args(tp)[1]
        return "a mapping" if value is Any else f"a mapping of {_type_name(value)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against annotation `tp`; return the typed value or raise ConfigError."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {value!r}")
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}{hint}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        (item,) = get_args(tp)
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        _, item = get_args(tp)
        return {str(k): _coerce(v, item, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a bug in this module


def _build(cls: type, raw: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_SERIALISED]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        full = f"{path}.{key}" if path else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"; did you mean '{(path + '.') if path else ''}{close[0]}'?" if close else ""
            valid = ", ".join(names)
            raise ConfigError(f"unknown config key '{full}'{hint} (valid here: {valid})")
        typed = _coerce(value, hints[key], full)
        lo, hi = _RANGES.get(full, (None, None))
        numeric = isinstance(typed, (int, float)) and not isinstance(typed, bool)
        if numeric and ((lo is not None and typed < lo) or (hi is not None and typed > hi)):
            rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{full}: expected a value in {rng}, got {typed!r}")
        kwargs[key] = typed
    return cls(**kwargs)


# -------------------------------------------------------------------------------- dotted paths
def parse_override(text: str) -> tuple[str, Any]:
    """`train.lr=3e-4` → ("train.lr", 0.0003). The value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        parsed = read_yaml(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    except ConfigError as exc:  # a duplicate key inside the value
        raise ConfigError(f"override {text!r}: {exc}") from None
    return key, parsed


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, creating intermediate mappings."""
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"override '{key}': '{where}' is {nxt!r}, not a section")
        node = nxt
    # Dict-valued keys that are themselves free-form (ablations, search.space) keep dots as written.
    node[parts[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Return a deep copy of `raw` with dotted overrides applied (a dict or KEY=VALUE strings)."""
    out = copy.deepcopy(raw)
    items = (
        [parse_override(o) for o in overrides] if isinstance(overrides, list) else overrides.items()
    )
    for key, value in items:
        # Free-form mappings keep the rest of the key whole: `ablations.V.model.branches` sets key
        # `model.branches` of variant V; `search.space.train.lr` sets space key `train.lr`.
        if key.startswith("ablations.") and key.count(".") >= 2:
            _, name, sub = key.split(".", 2)
            section = out.get("ablations") or {}
            section[name] = dict(section.get(name) or {}, **{sub: value})
            out["ablations"] = section
            continue
        if key.startswith("search.space.") and key.count(".") >= 3:
            search = out.get("search") or {}
            space = search.get("space") or {}
            space[key[len("search.space.") :]] = value
            search["space"] = space
            out["search"] = search
            continue
        set_dotted(out, key, value)
    return out


# ------------------------------------------------------------------------------- public interface
def _resolve_model(raw_model: dict[str, Any] | None) -> dict[str, Any]:
    """Expand `model.preset` into its fields; explicit keys win over the preset's values."""
    from mer.models.presets import PRESETS

    raw_model = dict(raw_model or {})
    preset = raw_model.get("preset", ModelConfig.preset)
    if preset is None:
        return raw_model
    if preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), list(PRESETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model.preset: unknown preset {preset!r}{hint}; expected one of {', '.join(PRESETS)}"
        )
    base = to_dict(PRESETS[preset])
    base.update(raw_model)
    base["preset"] = preset
    return base


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping into an ExperimentConfig: every key, each ablation variant and, when
    there is a `search` section, the whole search space against the base and each variant (so a
    bad space fails at load, not after Ray started)."""
    cfg = _validate(raw)
    _check_space(cfg)
    return cfg


def _validate(raw: dict[str, Any]) -> ExperimentConfig:
    """from_dict without the full space parse: configs derived from a loaded one (variants,
    search trials) and the space parser's own value checks use this."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    _check_ablations_shape(raw.get("ablations"))
    resolved = dict(raw)
    resolved["model"] = _resolve_model(raw.get("model"))
    if resolved.get("ablations") is None:
        resolved.pop("ablations", None)
    cfg: ExperimentConfig = _build(ExperimentConfig, resolved, "")
    cfg.raw = copy.deepcopy(raw)
    _check_semantics(cfg, raw)
    for name, overrides in cfg.ablations.items():
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ConfigError(f"ablations.{name}: variant names may use letters, digits, _ . + -")
        if any(k.split(".")[0] in ("ablations", "seeds") for k in overrides):
            raise ConfigError(f"ablations.{name}: a variant cannot change ablations or seeds")
        if any(k.split(".")[0] == "search" for k in overrides):
            raise ConfigError(
                f"ablations.{name}: a variant cannot change search settings; they hold for the "
                "whole sweep (one held-out set and one study setup keep variants comparable)"
            )
        try:
            base = {k: v for k, v in raw.items() if k != "ablations"}
            variant_raw = apply_overrides(base, overrides)
            variant_raw["model"] = _resolve_model(variant_raw.get("model"))
            vcfg = _build(ExperimentConfig, variant_raw, "")
            _check_semantics(vcfg, variant_raw)
            _check_search_keys(vcfg, overrides)
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None
    if cfg.search is not None:
        for key in cfg.search.space:
            try:
                get_dotted(cfg, key)
            except ConfigError:
                raise ConfigError(
                    f"search.space.{key}: not a config key (space keys are dotted paths such as "
                    "train.lr)"
                ) from None
    return cfg


def _check_ablations_shape(ablations: Any) -> None:
    """Each variant must be a mapping of dotted overrides; say so in those words (the generic
    type message would read "a mapping of Any")."""
    if ablations is None:
        return
    example = "(e.g. {full: {}, no_rnn: {model.recurrent: none}})"
    if not isinstance(ablations, dict):
        raise ConfigError(
            f"ablations: expected a mapping of variant name to dotted overrides {example}, "
            f"got {ablations!r}"
        )
    for name, overrides in ablations.items():
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(
                f"ablations.{name}: expected a mapping of dotted overrides (e.g. "
                f"{{model.recurrent: lstm}}), got {overrides!r}"
            )


def _check_space(cfg: ExperimentConfig) -> None:
    """Parse `search.space` as the search will (mer/sweep/search/): against the base config,
    then each variant's share of it (`SearchSpace.for_variant`) against that variant's config.

    The parser checks values by building configs with `with_overrides`, which does not come back
    here, so there is no recursion.
    """
    if cfg.search is None:
        return
    from mer.sweep.space import parse_space  # space.py imports this module

    space = parse_space(cfg.search.space, cfg)
    for name, fixed in cfg.ablations.items():
        kept = space.for_variant(fixed).keys
        try:
            vcfg = _variant(cfg, name)
            parse_space({k: cfg.search.space[k] for k in kept}, vcfg)
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None


def _check_search_keys(vcfg: ExperimentConfig, fixed: dict[str, Any]) -> None:
    """Keys this variant may not search (model.branches on au_oracle data), at load time."""
    if vcfg.search is not None and vcfg.search.space:
        from mer.sweep.space import check_variant_space

        check_variant_space(vcfg.search.space, vcfg, fixed)


def _check_semantics(cfg: ExperimentConfig, raw: dict[str, Any]) -> None:
    """Rules across keys, or on values a type cannot express. `raw` is what the user wrote, to
    tell a user's value from a default in messages."""
    _check_protocol(cfg)
    _check_train(cfg, raw)
    _check_au_codes(cfg.data.regions.au_codes)
    _check_data_sources(cfg.data)
    _check_frames(cfg.data)
    _check_labels(cfg.data)
    if not cfg.seeds:
        raise ConfigError("seeds: expected at least one seed")
    repeated = sorted({s for s in cfg.seeds if cfg.seeds.count(s) > 1})
    if repeated:
        raise ConfigError(
            f"seeds: {', '.join(map(str, repeated))} listed more than once in {cfg.seeds}; each "
            "seed runs every trial, so a repeated seed repeats them: list each seed once"
        )
    if not cfg.ablations:
        raise ConfigError("ablations: expected at least one variant (e.g. `full: {}`)")


COMPOSITE_PARTS = ("casme2", "samm", "smic")
NO_AU_DATASETS = ("smic", "deception")  # annotated by class folder / verdict only


def _check_labels(data: DataConfig) -> None:
    from mer.data.labels import get_scheme  # imports only mer.errors: no cycle

    get_scheme(data.labels)


def _check_frames(data: DataConfig) -> None:
    if data.frames.window == "clip" and data.frames.select == "onset_apex_offset":
        raise ConfigError(
            "data.frames.window: clip, but select onset_apex_offset always selects inside the "
            "annotated onset..offset; use window auto or annotated, or another select"
        )


def _check_data_sources(data: DataConfig) -> None:
    """Keys one dataset reads and another ignores: set on the wrong one, they would be silently
    ignored (the data layer checks the files themselves)."""
    if data.dataset != "megc2019" and data.sources:
        raise ConfigError(
            f"data.sources: only read for dataset megc2019 (this is {data.dataset}); remove it, "
            "or set data.dataset: megc2019"
        )
    if data.dataset == "megc2019":
        unknown = sorted(set(data.sources) - set(COMPOSITE_PARTS))
        if unknown:
            raise ConfigError(
                f"data.sources: unknown part(s) {', '.join(unknown)}; the MEGC2019 composite is "
                f"made of {', '.join(COMPOSITE_PARTS)}"
            )
        if data.root:
            raise ConfigError(
                "data.root: not read for megc2019; each part's media root is "
                "data.sources.<casme2|samm|smic>.root"
            )
    name = data.synthetic.layout if data.dataset == "synthetic" else data.dataset
    if data.regions.policy == "au_oracle" and name in NO_AU_DATASETS:
        raise ConfigError(
            f"data.regions.policy: au_oracle chooses regions from AU annotations, which "
            f"{data.dataset}{' (layout ' + name + ')' if name != data.dataset else ''} does not "
            "have; use all or fixed"
        )


def _check_protocol(cfg: ExperimentConfig) -> None:
    """Split syntax and the protocol rules a search depends on."""
    if not _SPLIT.match(cfg.protocol.split):
        raise ConfigError(
            f"protocol.split: expected loso, megc2019 or group_kfold:K, got {cfg.protocol.split!r}"
        )
    if cfg.protocol.selection == "inner_val" and cfg.protocol.val_subjects < 1:
        raise ConfigError(
            "protocol.selection: inner_val needs protocol.val_subjects >= 1 (subjects held out of "
            "each fold's training set to choose the epoch)"
        )
    if cfg.search is not None and cfg.protocol.val_subjects < 1:
        raise ConfigError(
            "search: the search objective is computed on inner-validation subjects; set "
            "protocol.val_subjects >= 1"
        )
    if cfg.search is not None and cfg.search.space:
        from mer.sweep.space import check_space_keys

        check_space_keys(cfg.search.space)  # data.*, protocol.*, ...: never searchable
    if cfg.search is not None and cfg.protocol.selection == "oracle_test":
        raise ConfigError(
            "protocol.selection: oracle_test picks epochs on the test subject, so a search "
            "objective would depend on test labels (PROTOCOL.md §4.1); use fixed_epochs or "
            "inner_val with a search"
        )


def _check_train(cfg: ExperimentConfig, raw: dict[str, Any]) -> None:
    """Optimizer and loss values torch would reject mid-run (or accept and train nonsense)."""
    if cfg.train.lr <= 0:
        raise ConfigError(
            f"train.lr: expected a learning rate > 0, got {cfg.train.lr!r} (the weights would "
            "never change)"
        )
    betas = cfg.train.betas
    if len(betas) != 2:
        raise ConfigError(f"train.betas: expected two numbers (Adam's beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"train.betas[{i}]: expected a value in [0, 1), got {beta!r}")
    cw = cfg.train.class_weights
    if not isinstance(cw, list):
        return
    n = cfg.model.num_classes
    if len(cw) != n:
        if "class_weights" not in (raw.get("train") or {}):  # the default, not the user's
            default = TrainConfig().class_weights
            raise ConfigError(
                f"train.class_weights: expected {n} weights (model.num_classes is {n}), but the "
                f"default {default} has {len(cw)}; set train.class_weights to {n} weights or "
                "balanced"
            )
        raise ConfigError(
            f"train.class_weights: expected {n} weights (model.num_classes), got {len(cw)}"
        )
    for i, weight in enumerate(cw):
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ConfigError(f"train.class_weights[{i}]: expected a weight >= 0, got {weight!r}")
    if not any(w > 0 for w in cw):
        raise ConfigError(
            f"train.class_weights: expected at least one weight > 0, got {cw!r} (all zero "
            "weights make the loss zero)"
        )


def _check_au_codes(codes: list[int]) -> None:
    """An AU code no region uses can never pick a region: a clip with only such AUs silently
    gets the whole face (mer/data/regions.py AU_REGIONS)."""
    from mer.data.regions import AU_REGIONS

    valid = sorted(set().union(*(c for _, c in AU_REGIONS)))
    unknown = [c for c in codes if c not in valid]
    if unknown:
        raise ConfigError(
            f"data.regions.au_codes: unknown AU code(s) {', '.join(map(str, unknown))}: no region "
            f"uses them (a clip with only those AUs would get the whole face); valid codes: "
            f"{', '.join(map(str, valid))}"
        )


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a sweep YAML, apply `--set` overrides, validate."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; expected a sweep YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except ConfigError as exc:  # a duplicate key
        raise ConfigError(f"{path}: {exc}") from None
    if raw is None:
        raise ConfigError(
            f"{path}: the file is empty (or only comments); a sweep needs at least a `data` "
            "section (data.dataset and where its files are; every other key has a default, see "
            "sweeps/demo.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    merged = apply_overrides(raw, overrides or [])
    _warn_added_variants(path, raw, merged)
    try:
        return from_dict(merged)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _warn_added_variants(path: Path, file_raw: dict[str, Any], raw: dict[str, Any]) -> None:
    """Adding a variant by --set is a feature, but a near-miss of an existing name (`fulll`) is
    likely a typo that would run a whole extra variant: warn with the close name."""
    in_file = file_raw.get("ablations")
    known = list(in_file) if isinstance(in_file, dict) else ["full"]  # the default variant
    now = raw.get("ablations")
    if not isinstance(now, dict):
        return
    for name in now:
        if name in known:
            continue
        close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
        if close:
            log.warning(
                "--set added variant %r (not in %s; did you mean %r?)", name, path, close[0]
            )


def variant_config(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
    """The config of one ablation variant: the base with the variant's overrides applied."""
    if variant not in cfg.ablations:
        close = difflib.get_close_matches(variant, list(cfg.ablations), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown variant {variant!r}{hint}; this sweep has {', '.join(cfg.ablations)}"
        )
    return _variant(cfg, variant)


def _variant(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
    """A variant's config, validated without re-parsing the search space: loading `cfg` parsed it
    against this variant already."""
    raw = apply_overrides(cfg.raw, cfg.ablations[variant])
    raw["ablations"] = {variant: cfg.ablations[variant]}
    return _validate(raw)


def with_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """A copy of `cfg` with dotted overrides applied to its raw mapping (used by search).

    Validated without re-parsing the search space: the overrides are sampled from (or checked by)
    the space parsed when `cfg` loaded, and the parser itself calls this for each value.
    """
    return _validate(apply_overrides(cfg.raw, overrides))


def to_dict(obj: Any) -> Any:
    """Resolved config (or any section) as plain data, without the raw copy."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name not in _NOT_SERIALISED
        }
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML that `load_config` reads back to an equal config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable content hash: same meaning (values), same hash, whatever the key order or process."""
    canonical = json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def get_dotted(cfg: Any, key: str) -> Any:
    """Read `a.b.c` from a config object or mapping; ConfigError naming the key when missing."""
    node = cfg
    for part in key.split("."):
        if dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"unknown config key '{key}'")
    return node


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a config, for W&B config panels and tables."""
    data = to_dict(obj)
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("ablations",):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out
