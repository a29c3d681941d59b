"""A config as plain data: the resolved values as nested dicts and lists (`to_dict`), their
dotted view (`flatten`), their content hash (`config_hash`) and dotted lookup (`get_dotted`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from mer.errors import ConfigError


def to_dict(obj: Any, *, canonical: bool = False) -> Any:
    """Resolved config (or any section, or data holding sections) as plain data, without the raw
    copy; sections keep their field order (dump_yaml writes it), and every setting is there, so
    a results folder's config.yaml says everything that made its numbers.

    `canonical` is what `config_hash` hashes. It leaves out a model's UNHASHED sections (how
    results are shown, e.g. `report`: they change no computed number) and its ADDED_FIELDS while
    they hold their default (keys mer added later: configs written before them keep their
    hashes, and so their data caches and --resume)."""
    if isinstance(obj, BaseModel):
        kind = type(obj)
        skip = getattr(kind, "UNHASHED", frozenset()) if canonical else frozenset()
        added = getattr(kind, "ADDED_FIELDS", frozenset()) if canonical else frozenset()
        out = {}
        for name, info in kind.model_fields.items():
            value = getattr(obj, name)
            if name in skip or (
                name in added and value == info.get_default(call_default_factory=True)
            ):
                continue
            out[info.alias or name] = to_dict(value, canonical=canonical)
        return out
    if isinstance(obj, dict):
        return {str(k): to_dict(v, canonical=canonical) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, canonical=canonical) for v in obj]
    return obj


def hash_form(obj: Any) -> Any:
    """What `config_hash` hashes (`to_dict(obj, canonical=True)`), for code that builds a key
    from part of a config (the data cache key)."""
    return to_dict(obj, canonical=True)


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable content hash: same meaning (values), same hash, whatever the key order or process.

    The prepared-data cache and --resume key on it: the canonical form (`to_dict(canonical=
    True)`) must never change for a config that means the same.
    """
    plain = to_dict(obj, canonical=True)
    canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def _keys(model: BaseModel) -> dict[str, str]:
    """YAML key → field name (`data.faces.global` is the field `global_`)."""
    return {(f.alias or name): name for name, f in type(model).model_fields.items()}


def get_dotted(cfg: Any, key: str) -> Any:
    """Read `a.b.c` from a config object or mapping; ConfigError naming the key when missing."""
    node = cfg
    for part in key.split("."):
        keys = _keys(node) if isinstance(node, BaseModel) else {}
        if part in keys:
            node = getattr(node, keys[part])
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
