"""The strict field types of the config: what a YAML value may be, and the words when it is not.

Coercion is deliberately narrow, because a sweep that runs for a day must not run on a guess:
a boolean is only `true`/`false` (never "yes" or 1), an integer is an int or an integral float
(never a bool or a string), a number is an int, a float or a numeric string (PyYAML reads `1e-3`
without a dot as a string) and must be finite, a string is a string or a number written bare.
Each type is a pydantic strict type behind a before-validator that does exactly this and fails
with today's message; `mer.config.messages` adds the key path.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal, NoReturn

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

ERROR_TYPE = "mer_config"  # the pydantic error type of every failure raised here


def fail(message: str, *, kind: str = "value", sub: str = "", **extra: Any) -> NoReturn:
    """Raise a validation error that `mer.config.messages` renders.

    kind "value": `message` describes the value at the error's location (`sub` is appended to
    that key path, e.g. "[1]"); "rule": `message` names its keys itself and is shown as it is;
    "unknown": an unknown key (`extra` holds key, close and valid).
    """
    ctx = {"message": message, "kind": kind, "sub": sub, **extra}
    raise PydanticCustomError(ERROR_TYPE, "{message}", ctx)


def close_hint(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------------------------ scalars
def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    fail(f"expected true/false, got {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    fail(f"expected an integer, got {value!r}")


def number(value: Any) -> float | None:
    """`value` as a float the way the config reads numbers, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # PyYAML reads `1e-3` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _float(value: Any) -> float:
    out = number(value)
    if out is None:
        fail(f"expected a number, got {value!r}")
    if not math.isfinite(out):
        fail(f"expected a finite number, got {value!r}")
    return out


def _any_float(value: Any) -> float:
    out = number(value)
    if out is None:
        fail(f"expected a number, got {value!r}")
    return out


def _str(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    fail(f"expected a string, got {value!r}")


Bool = Annotated[bool, BeforeValidator(_bool)]
Int = Annotated[int, BeforeValidator(_int)]
Float = Annotated[float, BeforeValidator(_float)]
# A number that a rule on the whole value bounds afterwards (so inf/nan get that rule's words).
BoundedLater = Annotated[float, BeforeValidator(_any_float)]
Str = Annotated[str, BeforeValidator(_str)]


def in_range(lo: float | None = None, hi: float | None = None) -> AfterValidator:
    """Bounds of a number, inclusive; written as given (`[0.0, inf]` for a float setting)."""

    def check(value: Any) -> Any:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            fail(f"expected a value in {rng}, got {value!r}")
        return value

    return AfterValidator(check)


# ------------------------------------------------------------------------------------ choices
def one_of(*values: str) -> Any:
    """A Literal of `values` that fails with the choices and the closest one."""

    def check(value: Any) -> Any:
        if value in values:
            return value
        options = ", ".join(repr(v) for v in values)
        fail(f"expected one of {options}, got {value!r}{close_hint(value, list(values))}")

    return Annotated[Literal[values], BeforeValidator(check)]  # type: ignore[valid-type]


def registered(options: Callable[[], tuple[str, ...]]) -> Any:
    """A string among `options()`, asked when a value is validated (the dataset registry, which
    is not read while the config is imported); fails like `one_of`."""

    def check(value: Any) -> Any:
        known = options()
        if isinstance(value, str) and value in known:
            return value
        listed = ", ".join(repr(v) for v in known)
        fail(f"expected one of {listed}, got {value!r}{close_hint(value, list(known))}")

    return Annotated[str, BeforeValidator(check)]


def choice_words(*values: str) -> str:
    return "one of " + ", ".join(repr(v) for v in values)


# ------------------------------------------------------------------------------- containers
def list_of(item: Any, words: str) -> Any:
    """A list (a tuple is taken as one) whose items are `item`; `words` names them in the
    message ("integers" → "expected a list of integers")."""

    def check(value: Any) -> Any:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            fail(f"expected a list of {words}, got {value!r}")
        return value

    return Annotated[list[item], BeforeValidator(check)]  # type: ignore[valid-type]


def mapping_of(value_type: Any, words: str = "") -> Any:
    """A mapping with string keys (YAML `1:` becomes "1"); null is an empty mapping."""
    what = f"a mapping of {words}" if words else "a mapping"

    def check(value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            fail(f"expected {what}, got {value!r}")
        return {str(k): v for k, v in value.items()}

    return Annotated[dict[str, value_type], BeforeValidator(check)]  # type: ignore[valid-type]


def checked(rule: Callable[[Any], None]) -> AfterValidator:
    """A rule on an already typed value: `rule(value)` calls `fail` when the value is wrong."""

    def run(value: Any) -> Any:
        rule(value)
        return value

    return AfterValidator(run)


# ------------------------------------------------------------------------------ class weights
def _class_weights(value: Any) -> Any:
    """A list of numbers, "balanced" or null; anything else names all three (checked per
    weight afterwards, so a NaN weight is named with its index)."""
    if value is None or (isinstance(value, str) and value == "balanced"):
        return value
    if isinstance(value, (list, tuple)):
        weights = [number(v) for v in value]
        if all(w is not None for w in weights):
            return weights
    fail(f"expected a list of numbers or one of 'balanced' or null, got {value!r}")


ClassWeights = Annotated[list[float] | Literal["balanced"] | None, BeforeValidator(_class_weights)]
