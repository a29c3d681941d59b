"""pydantic's ValidationError as the one-line message a user gets: the full key path and what was
expected, e.g. `train.epochs: expected an integer, got 'ten'` or `unknown config key 'train.lrr';
did you mean 'train.lr'? (valid here: ...)`.

The field types (`mer.config.types`) raise errors that carry their own wording; this module only
joins the location into a key path (`data.regions.au_codes[2]`, `data.sources.casme2.root`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mer.config.types import ERROR_TYPE


def key_path(prefix: str, loc: tuple[Any, ...]) -> str:
    """("train", "betas", 1) → "train.betas[1]"; `prefix` is the section's own path."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def describe(exc: ValidationError, prefix: str = "") -> str:
    """The first error of `exc` (in field order) as today's ConfigError message."""
    error = exc.errors(include_url=False)[0]
    path = key_path(prefix, tuple(error["loc"]))
    if error["type"] != ERROR_TYPE:  # pydantic's own check: every field type has ours first
        if error["type"] == "extra_forbidden":
            return f"unknown config key '{path}'"
        return f"{path or 'config'}: {error['msg']}"
    ctx = error["ctx"]
    if ctx["kind"] == "rule":
        return ctx["message"]
    if ctx["kind"] == "unknown":
        here = f"{path}." if path else ""
        hint = f"; did you mean '{here}{ctx['close']}'?" if ctx["close"] else ""
        full = f"{here}{ctx['key']}"
        return f"unknown config key '{full}'{hint} (valid here: {ctx['valid']})"
    return f"{(path + ctx['sub']) or 'config'}: {ctx['message']}"
