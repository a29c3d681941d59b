"""The base of every config section: strict pydantic model that validates at construction and
raises ConfigError (never pydantic's ValidationError), names unknown keys with the closest valid
one, and unpickles configs pickled by the dataclass config that preceded it."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mer.config.messages import describe
from mer.config.types import fail
from mer.errors import ConfigError


class ConfigModel(BaseModel):
    """A config section. `SECTION` is its key path in a sweep YAML ("data.frames"), so that an
    error in a section built on its own (`ModelConfig(pool=0)`) still names the full key."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=False)
    SECTION: ClassVar[str] = ""
    # Fields added after config hashes were recorded: config_hash (mer.config.plain.to_dict with
    # canonical=True, hence cache keys and --resume) leaves them out while at their default, so
    # every existing config keeps its hash; config.yaml shows them.
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def keys(cls) -> dict[str, str]:
        """YAML key → field name (a key that is a Python keyword, `global`, has a field alias)."""
        return {(f.alias or name): name for name, f in cls.model_fields.items()}

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, self.SECTION)) from None

    # Like pydantic's own __init__ (RootModel marks its wrapper the same way): sections nested in
    # another are validated by pydantic-core directly, so their errors carry the full key path;
    # only a section built on its own comes through here.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls.SECTION)) from None

    @model_validator(mode="before")
    @classmethod
    def _mapping_with_known_keys(cls, data: Any) -> Any:
        """A section is a mapping (null: all defaults) whose keys are this section's fields."""
        if isinstance(data, cls):
            return data
        if data is None:
            return {}
        if not isinstance(data, dict):
            fail(f"expected a mapping, got {data!r}")
        names = list(cls.keys())
        for key in data:
            if str(key) not in names:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
                fail(
                    "unknown config key",
                    kind="unknown",
                    key=str(key),
                    close=close[0] if close else "",
                    valid=", ".join(names),
                )
        return {str(k): v for k, v in data.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Pydantic's own state, or the plain `__dict__` of a config pickled by the dataclass
        version (an interrupted search's Tune state holds one): re-validated, so an old pickle
        gives an equal, valid config."""
        if "__pydantic_fields_set__" in state:
            super().__setstate__(state)
            return
        fields = {k: v for k, v in state.items() if k in type(self).model_fields}
        super().__setstate__(type(self).model_validate(fields).__getstate__())
