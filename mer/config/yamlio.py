"""Sweep YAML in and out: YAML 1.2 scalars, and a key written twice is an error."""

from __future__ import annotations

import re
from typing import Any

import yaml

from mer.config.plain import to_dict
from mer.errors import ConfigError


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


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML that `load_config` reads back to an equal config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
