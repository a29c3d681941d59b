"""Models: the dual-branch 3D-CNN and its blocks. `build_model` imports torch lazily, and the
Keras checkpoint functions (`load_keras_weights`, `save_keras_weights`) import h5py lazily."""

from __future__ import annotations

from typing import Any

from mer.models.presets import PRESETS

__all__ = ["PRESETS", "build_model", "load_keras_weights", "save_keras_weights"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        # lazy: the network imports torch (~2 s); `mer --help` and config checks stay fast
        from mer.models.network import build_model

        return build_model
    if name in ("load_keras_weights", "save_keras_weights"):
        # lazy: the Keras checkpoint functions import torch and h5py
        from mer.models import keras_weights

        return getattr(keras_weights, name)
    raise AttributeError(name)
