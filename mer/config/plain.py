"""A config as plain data: the resolved values as nested dicts and lists (`to_dict`), their
dotted view (`flatten`), their content hash (`config_hash`) and dotted lookup (`get_dotted`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from mer.errors import ConfigError


def to_dict(obj: Any) -> Any:
    """Resolved config (or any section, or data holding sections) as plain data, without the raw
    copy; sections keep their field order (dump_yaml writes it)."""
    if isinstance(obj, BaseModel):
        return {name: to_dict(getattr(obj, name)) for name in type(obj).model_fields}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def hash_form(obj: Any) -> Any:
    """`to_dict` without the sections' late fields that hold their default (`LATE_FIELDS`):
    what `config_hash` hashes, so adding a key never moves an existing config's hash."""
    if isinstance(obj, BaseModel):
        late = getattr(type(obj), "LATE_FIELDS", frozenset())
        fields = type(obj).model_fields
        return {
            name: hash_form(getattr(obj, name))
            for name, info in fields.items()
            if not (
                name in late and getattr(obj, name) == info.get_default(call_default_factory=True)
            )
        }
    if isinstance(obj, dict):
        return {str(k): hash_form(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [hash_form(v) for v in obj]
    return obj


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable content hash: same meaning (values), same hash, whatever the key order or process.

    The prepared-data cache and --resume key on it: the canonical form must never change
    (`hash_form`: fields added later count only when set to something else than their default).
    """
    canonical = json.dumps(hash_form(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def get_dotted(cfg: Any, key: str) -> Any:
    """Read `a.b.c` from a config object or mapping; ConfigError naming the key when missing."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
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
