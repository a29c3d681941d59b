"""Dotted overrides (`--set train.lr=3e-4`, ablation variants) applied to a raw config mapping."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from mer.config.yamlio import read_yaml
from mer.errors import ConfigError


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
