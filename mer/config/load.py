"""Loading a sweep: the YAML file, `--set` overrides, the model preset, and each ablation variant,
validated once; derived configs (a variant, a search trial's overrides, `replace`)."""

from __future__ import annotations

import copy
import difflib
import logging
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mer.config.base import ConfigModel
from mer.config.checks import check_report_reference
from mer.config.overrides import apply_overrides
from mer.config.presets import MODEL_PRESETS
from mer.config.schema import ExperimentConfig
from mer.config.yamlio import read_yaml
from mer.errors import ConfigError

log = logging.getLogger("mer.config")

M = TypeVar("M", bound=ConfigModel)


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a sweep YAML, apply `--set` overrides, validate (search spaces: mer.sweep.space)."""
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
        cfg = from_dict(merged)
        check_report_reference(cfg)
        return cfg
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


def _resolve_model(raw_model: Any) -> Any:
    """Expand `model.preset` into its fields; explicit keys win over the preset's values. A
    value that is not a mapping, or an unknown preset, is left for validation to name."""
    if raw_model is None:
        raw_model = {}
    if not isinstance(raw_model, dict):
        return raw_model
    preset = raw_model.get("preset", "casme2")
    if not isinstance(preset, str) or preset not in MODEL_PRESETS:
        return dict(raw_model)
    return {**MODEL_PRESETS[preset], **raw_model, "preset": preset}


def _build(raw: dict[str, Any]) -> ExperimentConfig:
    resolved = dict(raw)
    resolved["model"] = _resolve_model(raw.get("model"))
    return ExperimentConfig.model_validate(resolved)


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping into an ExperimentConfig: every key, the model preset, and each
    ablation variant (a variant's error starts with `ablations.NAME: `)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    cfg = _build(raw)
    cfg.__pydantic_private__["_raw"] = copy.deepcopy(raw)  # type: ignore[index]
    base = {k: v for k, v in raw.items() if k != "ablations"}
    for name, overrides in cfg.ablations.items():
        try:
            _build(apply_overrides(base, overrides))
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None
    return cfg


def variant_config(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
    """The config of one ablation variant: the base with the variant's overrides applied."""
    if variant not in cfg.ablations:
        close = difflib.get_close_matches(variant, list(cfg.ablations), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown variant {variant!r}{hint}; this sweep has {', '.join(cfg.ablations)}"
        )
    raw = apply_overrides(cfg.raw, cfg.ablations[variant])
    raw["ablations"] = {variant: cfg.ablations[variant]}
    return from_dict(raw)


def with_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """A copy of `cfg` with dotted overrides applied to its raw mapping (used by search)."""
    return from_dict(apply_overrides(cfg.raw, overrides))


def replace(obj: M, **changes: Any) -> M:
    """`obj` with some fields changed, validated again (what dataclasses.replace was for the
    dataclass config); an ExperimentConfig keeps its raw mapping."""
    data = {key: getattr(obj, name) for key, name in type(obj).keys().items()}
    data.update(changes)
    new = type(obj).model_validate(data)
    if isinstance(obj, ExperimentConfig):
        new.__pydantic_private__["_raw"] = copy.deepcopy(obj.raw)  # type: ignore[index]
    return new
