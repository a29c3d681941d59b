"""Load the authors' Keras 2 checkpoints (.h5 / .hdf5) into mer's model, and write mer's weights
back in that format.

The original code trains with `ModelCheckpoint(...)`, which writes a full-model `.hdf5` (weights
under `/model_weights`); `model.save_weights("x.h5")` writes the same groups at the root. Both
are Keras 2's HDF5 layout: root attribute `layer_names`, one group per layer with attribute
`weight_names`, each weight the dataset `/<layer>/<weight name>`. Keras loads them by ORDER,
not by name (names come from per-session counters: `dense_38` in one session is `dense_41` in
another), so this module does the same and checks every shape against mer's model, reporting
which dataset does not fit which mer parameter. `mer.models.keras_layout` says what goes where;
tests/test_keras_weights.py checks the result against logits the Keras model computed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from mer.errors import ConfigError, DataError
from mer.models.keras_layout import KerasLayout, KerasWeight, keras_layout, to_keras, to_mer
from mer.models.network import build_model
from mer.models.presets import PRESETS

KERAS_VERSION = "2.21.0"  # the Keras 2 release whose HDF5 layout save_keras_weights writes


@dataclass(frozen=True)
class FileLayer:
    """A layer with weights as stored in the file, in load order."""

    name: str
    datasets: tuple[str, ...]  # full dataset paths, e.g. "/conv3d/conv3d/kernel:0"
    arrays: tuple[np.ndarray, ...]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [a.shape for a in self.arrays]


# ------------------------------------------------------------------------------ reading


def _text(value: object) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: str | Path) -> list[FileLayer]:
    """The layers with weights of a Keras 2 HDF5 weights or full-model file, in load order.

    DataError (naming the file, and the dataset where one is at fault) for a missing file, a
    file that is not HDF5, the Keras 3 layout, and a truncated or otherwise unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder (a TensorFlow SavedModel?); expected a Keras 2 .h5/.hdf5 file"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such Keras weights file")
    if not h5py.is_hdf5(path):
        hint = (
            " (it is a zip archive: a Keras 3 .keras file; save the weights with Keras 2's "
            "model.save_weights('x.h5') instead)"
            if zipfile.is_zipfile(path)
            else ""
        )
        raise DataError(f"{path}: not an HDF5 file{hint}; expected a Keras 2 .h5/.hdf5 file")
    try:
        with h5py.File(path, "r") as f:
            return _read_layers(path, f)
    except OSError as e:  # h5py: truncated or damaged file
        raise DataError(f"{path}: cannot read this HDF5 file ({e})") from e


def _read_layers(path: Path, f: h5py.File) -> list[FileLayer]:
    root = f["model_weights"] if isinstance(f.get("model_weights"), h5py.Group) else f
    prefix = root.name.rstrip("/") + "/"
    if "layer_names" not in root.attrs:
        if any(k in root for k in ("layers", "vars", "_layer_checkpoint_dependencies")):
            raise DataError(
                f"{path}: Keras 3 weights layout (groups layers/<name>/vars/<i>, no "
                "'layer_names'), which mer does not read; save the weights with Keras 2 "
                "(tf_keras, or TF ≤ 2.15) as model.save_weights('x.h5'): a name ending in "
                "'.h5' but not '.weights.h5'"
            )
        raise DataError(
            f"{path}: HDF5 without Keras's 'layer_names' attribute at {root.name}: not a Keras "
            "2 weights or full-model file"
        )
    layers = []
    for name in map(_text, root.attrs["layer_names"]):
        group = root.get(name)
        if not isinstance(group, h5py.Group):
            raise DataError(
                f"{path}: layer '{name}' is listed in layer_names but {prefix}{name} "
                "is missing (truncated file?)"
            )
        weight_names = [_text(w) for w in group.attrs.get("weight_names", [])]
        datasets, arrays = [], []
        for weight in weight_names:
            where = f"{prefix}{name}/{weight}"
            node = group.get(weight)
            if not isinstance(node, h5py.Dataset):
                raise DataError(
                    f"{path}: dataset {where} is listed in weight_names of '{name}' "
                    "but missing (truncated file?)"
                )
            try:
                arrays.append(np.asarray(node[()], dtype=np.float32))
            except (OSError, ValueError, TypeError) as e:
                raise DataError(f"{path}: dataset {where} cannot be read as numbers ({e})") from e
            datasets.append(where)
        if weight_names:
            layers.append(FileLayer(name, tuple(datasets), tuple(arrays)))
    return layers


# ------------------------------------------------------------------------------ matching


def _fitting_presets(file_layers: list[FileLayer], model: nn.Module) -> list[str]:
    """The presets whose model (at this model's H×W; T changes no shape) has exactly the
    file's shapes."""
    shapes = [layer.shapes for layer in file_layers]
    _, h, w = model.input_shape
    fits = []
    for name, cfg in PRESETS.items():
        try:
            with torch.device("meta"):
                candidate = keras_layout(build_model(cfg, input_shape=(1, h, w)))
        except ConfigError:  # no Keras counterpart (e.g. the deception preset's MHA)
            continue
        if candidate.shapes() == shapes or candidate.shapes() == _swap_inputs(shapes):
            fits.append(name)
    return fits


def _swap_inputs(shapes: list) -> list:
    return [shapes[1], shapes[0], *shapes[2:]] if len(shapes) > 1 else shapes


def _fit_hint(file_layers: list[FileLayer], model: nn.Module) -> str:
    fits = _fitting_presets(file_layers, model)
    _, h, w = model.input_shape
    if fits:
        return (
            f" The file's shapes fit mer.models.PRESETS {', '.join(fits)} (built for H×W = "
            f"{h}×{w}): build the model from {'that preset' if len(fits) == 1 else 'one of them'}."
        )
    return f" No preset in mer.models.PRESETS fits the file at H×W = {h}×{w}."


def _structure(layers: list[list[int]]) -> dict[str, int] | None:
    """Per-step Linears, MSMH scales and head Linears of a file's layer structure (weights per
    layer: conv 2, conv 2, conv 2, CBAM 10, per-step Dense 2 each, GRU 3, MSMH 8 per scale,
    head Dense 2 each, the output Dense last); None when the file is not built that way."""
    counts = [len(w) for w in layers]
    if counts[:4] != [2, 2, 2, 10] or 3 not in counts[4:]:
        return None
    gru = counts.index(3, 4)
    rest = counts[gru + 1 :]
    if len(rest) < 2 or rest[0] % 8 or any(n != 2 for n in counts[4:gru] + rest[1:]):
        return None
    return {
        "per-step Linears": gru - 4,
        "MSMH scales": rest[0] // 8,
        "hidden head Linears": len(rest) - 2,
    }


def _check_counts(path: Path, file_layers: list[FileLayer], layout: KerasLayout, model) -> None:
    found = [list(layer.datasets) for layer in file_layers]
    wanted = [list(layer.weights) for layer in layout.layers]
    if [len(w) for w in found] == [len(w) for w in wanted]:
        return
    have, need = _structure(found), _structure(wanted)
    keys = {
        "per-step Linears": "model.dense",
        "MSMH scales": "model.msmh_scales",
        "hidden head Linears": "model.head",
    }
    if have is None:
        detail = (
            "the file is not laid out like the dual-branch 3D-CNN (conv, conv, conv, CBAM, "
            "per-step Dense…, GRU, MSMH, Dense…)"
        )
    else:
        detail = "; ".join(
            f"the file has {have[k]} {k}, this model {need[k]} ({keys[k]})"
            for k in keys
            if have[k] != need[k]
        )
    listing = ", ".join(f"{layer.name} ({len(layer.datasets)})" for layer in file_layers)
    raise DataError(
        f"{path}: {len(file_layers)} Keras layers with weights [{listing}], but this model "
        f"needs {len(layout.layers)} with "
        f"{[len(w) for w in wanted]} weights: {detail}.{_fit_hint(file_layers, model)}"
    )


def _mismatch(path, dataset, array, weight: KerasWeight, what, file_layers, model) -> DataError:
    torch_shape = to_mer(weight, np.empty(weight.shape, np.float32))[0].shape
    if weight.rows is None:
        torch_text = f"torch {tuple(torch_shape)}"
    else:
        torch_text = f"torch rows of {tuple(torch_shape)}"
    return DataError(
        f"{path}: dataset {dataset} has shape {tuple(array.shape)}, but mer's {weight.target()} "
        f"({what}) needs Keras shape {weight.shape} ({torch_text}).{_fit_hint(file_layers, model)}"
    )


def _match(path: Path, file_layers: list[FileLayer], layout: KerasLayout, model) -> list:
    """[(KerasWeight, dataset, array)] in load order, every role and shape checked."""
    _check_counts(path, file_layers, layout, model)
    # The two input convs: Keras orders them by its graph walk, mer by branch; match by shape.
    first_two = [layer.shapes for layer in file_layers[:2]]
    wanted_two = [[w.shape for w in layer.weights] for layer in layout.layers[:2]]
    if first_two != wanted_two and first_two[::-1] == wanted_two:
        file_layers = [file_layers[1], file_layers[0], *file_layers[2:]]
    pairs = []
    for found, wanted in zip(file_layers, layout.layers, strict=True):
        for dataset, array, weight in zip(found.datasets, found.arrays, wanted.weights):
            role = dataset.rsplit("/", 1)[-1].split(":")[0]
            if role != weight.role:
                raise DataError(
                    f"{path}: dataset {dataset} is a '{role}' where mer's {weight.target()} "
                    f"({wanted.what}) expects the Keras '{weight.role}' (weights out of order?)"
                )
            if array.shape != weight.shape:
                raise _mismatch(path, dataset, array, weight, wanted.what, file_layers, model)
            pairs.append((weight, dataset, array))
    return pairs


# ------------------------------------------------------------------------------ public API


def load_keras_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Copy the weights of an original Keras checkpoint into `model` (in place) and return it.

    `model` must be built like the original (e.g. `build_model(PRESETS["casme2"])`, input size
    the checkpoint's); ConfigError names the switch that has no Keras counterpart, DataError the
    dataset that does not fit. Every parameter is replaced; train/eval mode is left as it is.
    Which gate the attention uses (ec_cbam: CASME II/SAMM/CAS(ME)^3; ec_cbam_sum: SMIC) is not in
    the weights: pick the preset of the checkpoint's dataset.
    """
    path = Path(path)
    layout = keras_layout(model)
    file_layers = read_keras_h5(path)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    new: dict[str, np.ndarray] = {}
    for weight, _, array in _match(path, file_layers, layout, model):
        for key, value in zip(weight.keys, to_mer(weight, array), strict=True):
            if weight.rows is None:
                new[key] = value
            else:
                new.setdefault(key, np.empty(tuple(state[key].shape), np.float32))
                new[key][weight.rows[0] : weight.rows[1]] = value
    model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in new.items()}, strict=True
    )
    return model


def save_keras_weights(model: nn.Module, path: str | Path) -> Path:
    """Write `model`'s weights as a Keras 2 HDF5 weights file (what the original's
    `model.save_weights("x.h5")` writes; `load_weights` of the Keras model reads it). Layer and
    weight names are the ones a fresh Keras session gives the original model. The file is
    written whole or not at all."""
    path = Path(path)
    layout = keras_layout(model)
    state = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    weighted = {layer.name: layer for layer in layout.layers}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [name.encode("utf8") for name in layout.layer_names]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
            f.attrs["written_by"] = b"mer.models.save_keras_weights"
            for name in layout.layer_names:
                group = f.create_group(name)
                layer = weighted.get(name)
                weights = layer.weights if layer else ()
                group.attrs["weight_names"] = (
                    [w.name.encode("utf8") for w in weights] if weights else np.array([])
                )
                for w in weights:
                    parts = [
                        state[k] if w.rows is None else state[k][slice(*w.rows)] for k in w.keys
                    ]
                    group.create_dataset(w.name, data=np.ascontiguousarray(to_keras(w, parts)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
