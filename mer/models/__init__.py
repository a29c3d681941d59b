"""Models: the dual-branch 3D-CNN and its blocks. `build_model` imports torch lazily."""

from __future__ import annotations

from typing import Any

from mer.models.presets import PRESETS

__all__ = ["PRESETS", "build_model"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from mer.models.network import build_model

        return build_model
    raise AttributeError(name)
