"""Rules a field type cannot express: values checked against other values, and the rules across
sections (run when an ExperimentConfig is built).

Rules inside one section run when that section is built, so code that receives a ModelConfig or
a TrainConfig never re-checks it. Rules across sections (or across the keys of the data section,
which the data layer's tests build on purpose in combinations a sweep may not use) run on the
whole ExperimentConfig. Every message names its keys.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from mer.config.presets import MODEL_PRESETS
from mer.config.types import close_hint, fail
from mer.datasets import facs, labels, registry
from mer.errors import ConfigError

if TYPE_CHECKING:
    from mer.config.schema import (
        DataConfig,
        ExperimentConfig,
        ModelConfig,
        ProtocolConfig,
        SyntheticConfig,
    )

DEFAULT_CLASS_WEIGHTS = [0.3, 0.35, 0.35]
_SPLIT = re.compile(r"^(loso|megc2019|group_kfold:[1-9][0-9]*)$")
# Variant and sweep names become folder names (trials/{variant}/, {output}/{name}/): one path
# component from a safe alphabet that cannot be `.` or `..` (nor any hidden name).
_SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")
SAFE_NAME_WORDS = "letters, digits, _ . + - (not starting with '.')"


# ------------------------------------------------------------------------------- field rules
def split_syntax(split: str) -> None:
    if not _SPLIT.match(split):
        fail(f"expected loso, megc2019 or group_kfold:K, got {split!r}")


def learning_rate(lr: float) -> None:
    if lr <= 0:
        fail(f"expected a learning rate > 0, got {lr!r} (the weights would never change)")


def adam_betas(betas: list[float]) -> None:
    if len(betas) != 2:
        fail(f"expected two numbers (Adam's beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            fail(f"expected a value in [0, 1), got {beta!r}", sub=f"[{i}]")


def class_weight_values(weights: Any) -> None:
    if not isinstance(weights, list):
        return
    for i, weight in enumerate(weights):
        if not (math.isfinite(weight) and weight >= 0.0):
            fail(f"expected a weight >= 0, got {weight!r}", sub=f"[{i}]")
    if not any(w > 0 for w in weights):
        fail(
            f"expected at least one weight > 0, got {weights!r} (all zero weights make the "
            "loss zero)"
        )


def layer_widths(widths: list[int]) -> None:
    if any(w < 1 for w in widths):
        fail(f"widths must be positive, got {widths}")


def preset_name(preset: str | None) -> None:
    if preset is not None and preset not in MODEL_PRESETS:
        hint = close_hint(preset, list(MODEL_PRESETS))
        fail(f"unknown preset {preset!r}{hint}; expected one of {', '.join(MODEL_PRESETS)}")


def au_codes_known(codes: list[int]) -> None:
    """An AU code no region uses can never pick a region: a clip with only such AUs silently
    gets the whole face (mer.datasets.facs.AU_REGIONS)."""
    valid = facs.region_codes()
    unknown = [c for c in codes if c not in valid]
    if unknown:
        fail(
            f"unknown AU code(s) {', '.join(map(str, unknown))}: no region uses them (a clip "
            f"with only those AUs would get the whole face); valid codes: "
            f"{', '.join(map(str, valid))}"
        )


def label_scheme(name: str) -> None:
    try:
        labels.get_scheme(name)
    except ConfigError as exc:
        fail(str(exc), kind="rule")


def seed_list(seeds: list[int]) -> None:
    if not seeds:
        fail("expected at least one seed")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        fail(
            f"{', '.join(map(str, repeated))} listed more than once in {seeds}; each seed runs "
            "every trial, so a repeated seed repeats them: list each seed once"
        )


def ablations_shape(ablations: Any) -> Any:
    """Each variant must be a mapping of dotted overrides; say so in those words (a generic
    type message would read "a mapping of a mapping"). null: the one default variant."""
    if ablations is None:
        return {"full": {}}
    example = "(e.g. {full: {}, no_rnn: {model.recurrent: none}})"
    if not isinstance(ablations, dict):
        fail(
            f"ablations: expected a mapping of variant name to dotted overrides {example}, "
            f"got {ablations!r}",
            kind="rule",
        )
    for name, overrides in ablations.items():
        if overrides is not None and not isinstance(overrides, dict):
            fail(
                f"ablations.{name}: expected a mapping of dotted overrides (e.g. "
                f"{{model.recurrent: lstm}}), got {overrides!r}",
                kind="rule",
            )
    return ablations


def ablation_rules(ablations: dict[str, dict[str, Any]]) -> None:
    if not ablations:
        fail("ablations: expected at least one variant (e.g. `full: {}`)", kind="rule")
    for name, overrides in ablations.items():
        if not _SAFE_NAME.fullmatch(name):
            fail(
                f"ablations: variant name {name!r} is a folder name (trials/{{variant}}/); use "
                f"{SAFE_NAME_WORDS}",
                kind="rule",
            )
        if any(k.split(".")[0] in ("ablations", "seeds") for k in overrides):
            fail(f"ablations.{name}: a variant cannot change ablations or seeds", kind="rule")
        if any(k.split(".")[0] == "report" for k in overrides):
            fail(
                f"ablations.{name}: a variant cannot change report settings; one set of "
                "intervals and comparisons covers the whole sweep",
                kind="rule",
            )
        if any(k.split(".")[0] == "search" for k in overrides):
            fail(
                f"ablations.{name}: a variant cannot change search settings; they hold for the "
                "whole sweep (one held-out set and one study setup keep variants comparable)",
                kind="rule",
            )


def sweep_name(name: str) -> None:
    """`name` is the results folder's name under `output` and part of every study and W&B
    name: one folder name, so it can never point elsewhere (`../x`, `/abs`)."""
    if not _SAFE_NAME.fullmatch(name):
        fail(
            f"expected a folder name using {SAFE_NAME_WORDS}, got {name!r} (the results go to "
            "{output}/{name}; set `output` to choose where)"
        )


# ----------------------------------------------------------------------------- section rules
def protocol_rules(protocol: ProtocolConfig) -> None:
    if protocol.selection == "inner_val" and protocol.val_subjects < 1:
        fail(
            "protocol.selection: inner_val needs protocol.val_subjects >= 1 (subjects held out "
            "of each fold's training set to choose the epoch)",
            kind="rule",
        )


def model_rules(model: ModelConfig) -> None:
    """Values that only fail together (what build_model would otherwise find)."""
    if model.attention != "none" and model.merge_channels // model.attention_reduction < 1:
        fail(
            f"model.attention_reduction: {model.attention_reduction} leaves "
            f"{model.merge_channels} // {model.attention_reduction} = 0 hidden units in the "
            f"channel attention MLP (model.merge_channels = {model.merge_channels})",
            kind="rule",
        )
    if not model.dense and model.dense_out_dropout > 0:
        fail(
            "model.dense_out_dropout: there is no per-step Linear to follow (model.dense is empty)",
            kind="rule",
        )


# -------------------------------------------------------------------------- experiment rules
def check_experiment(cfg: ExperimentConfig) -> None:
    """Rules across sections."""
    _check_search_protocol(cfg)
    _check_class_weight_count(cfg)
    _check_data_sources(cfg.data)
    _check_frames(cfg.data)


def _check_search_protocol(cfg: ExperimentConfig) -> None:
    """The protocol rules a search depends on (its space is checked by mer.sweep.space)."""
    if cfg.search is not None and cfg.protocol.val_subjects < 1:
        fail(
            "search: the search objective is computed on inner-validation subjects; set "
            "protocol.val_subjects >= 1",
            kind="rule",
        )
    if cfg.search is not None and cfg.protocol.selection == "oracle_test":
        fail(
            "protocol.selection: oracle_test picks epochs on the test subject, so a search "
            "objective would depend on test labels (PROTOCOL.md §4.1); use fixed_epochs or "
            "inner_val with a search",
            kind="rule",
        )


def check_report_reference(cfg: ExperimentConfig) -> None:
    """`report.reference` names a variant of the sweep. Checked where a sweep is loaded or
    planned (load_config, mer.experiment.plan): a variant's own config holds only itself."""
    ref = cfg.report.reference
    if ref is not None and ref not in cfg.ablations:
        raise ConfigError(
            f"report.reference: {ref!r} is not a variant of this sweep ({', '.join(cfg.ablations)})"
            f"{close_hint(ref, list(cfg.ablations))}"
        )


def _check_class_weight_count(cfg: ExperimentConfig) -> None:
    cw = cfg.train.class_weights
    n = cfg.model.num_classes
    if not isinstance(cw, list) or len(cw) == n:
        return
    if "class_weights" not in cfg.train.model_fields_set:  # the default, not the user's
        fail(
            f"train.class_weights: expected {n} weights (model.num_classes is {n}), but the "
            f"default {DEFAULT_CLASS_WEIGHTS} has {len(cw)}; set train.class_weights to {n} "
            "weights or balanced",
            kind="rule",
        )
    fail(
        f"train.class_weights: expected {n} weights (model.num_classes), got {len(cw)}",
        kind="rule",
    )


def _check_frames(data: DataConfig) -> None:
    if data.frames.window == "clip" and data.frames.select == "onset_apex_offset":
        fail(
            "data.frames.window: clip, but select onset_apex_offset always selects inside the "
            "annotated onset..offset; use window auto or annotated, or another select",
            kind="rule",
        )


def _check_data_sources(data: DataConfig) -> None:
    """Keys one dataset reads and another ignores: set on the wrong one, they would be silently
    ignored (the data layer checks the files themselves)."""
    try:
        registry.check_source_keys(data.dataset, root=data.root, sources=data.sources)
    except ConfigError as exc:
        fail(str(exc), kind="rule")
    try:
        registry.check_expressions(data.spec.name, data.expressions)
    except ConfigError as exc:
        fail(str(exc), kind="rule")
    _check_label_list(data)
    if data.regions.policy == "au_oracle" and not data.spec.has_aus:
        layout = f" (layout {data.synthetic.layout})" if data.is_synthetic else ""
        fail(
            f"data.regions.policy: au_oracle chooses regions from AU annotations, which "
            f"{data.dataset}{layout} does not have; use all or fixed",
            kind="rule",
        )


def _check_label_list(data: DataConfig) -> None:
    """`data.label_list` exactly when the label scheme reads a list for this dataset (the
    composite reads its own list, `data.annotations`)."""
    scheme = labels.get_scheme(data.labels)
    name = data.spec.name
    if scheme.source is not None and data.spec.parts:
        if data.label_list:
            fail(
                f"data.label_list: {data.dataset} takes its labels from its own list "
                "(data.annotations); leave data.label_list empty",
                kind="rule",
            )
        return
    if scheme.source is not None and not scheme.reads_list(name):
        fail(
            f"data.labels: {data.labels} labels {', '.join(scheme.datasets)} from a list; "
            f"{name} is not among them",
            kind="rule",
        )
    if scheme.reads_list(name) and not data.label_list:
        fail(
            f"data.label_list: label scheme {data.labels} reads its labels from a list file; set "
            "it (the official combined_3class_gt.csv)",
            kind="rule",
        )
    if data.label_list and not scheme.reads_list(name):
        fail(
            f"data.label_list: only read by a label scheme that labels from a list "
            f"(megc2019_official); data.labels is {data.labels}, so it would be ignored",
            kind="rule",
        )


#: Synthetic datasets: at most this many clips in all (subjects x clips), and this many bytes of
#: frames per clip (frames x size^2 x 4/3 width x 3), which the generator holds while writing one.
SYNTHETIC_MAX_CLIPS = 20_000
SYNTHETIC_MAX_CLIP_BYTES = 1 << 30
#: One clip's prepared arrays (data.frames.count x data.size^2 x 3 channels x the branches): a
#: trial holds every clip of its fold on its device, so a clip this large can never train.
PREPARED_MAX_CLIP_BYTES = 1 << 30


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def prepared_clip_bytes(count: int, size: int, policy: str) -> int:
    """Bytes of one clip in the prepared arrays: branch A, and branch B unless policy none."""
    return int(count) * int(size) ** 2 * 3 * (1 if policy == "none" else 2)


def data_rules(data: DataConfig) -> None:
    """Sizes that cannot fit anywhere, named by their keys with the estimate (issue 17.8); the
    estimate for the whole dataset, which needs its clip count, is checked at prepare time."""
    per_clip = prepared_clip_bytes(data.frames.count, data.size, data.regions.policy)
    if per_clip > PREPARED_MAX_CLIP_BYTES:
        branches = 1 if data.regions.policy == "none" else 2
        fail(
            f"data.size {data.size} and data.frames.count {data.frames.count}: one clip's "
            f"prepared arrays would take {_gib(per_clip)} ({data.frames.count} frames x "
            f"{data.size}^2 px x 3 channels x {branches} branch(es)), above the limit of "
            f"{_gib(PREPARED_MAX_CLIP_BYTES)} per clip (every trial holds all clips of its fold "
            "in memory); lower data.size or data.frames.count",
            kind="rule",
        )


def synthetic_rules(syn: SyntheticConfig) -> None:
    """Parameters that only fail together with the layout or with each other (what the
    generator would otherwise refuse, or fail on half-way)."""
    layout = registry.synthetic_layout(syn.layout)
    if syn.subjects * syn.clips > SYNTHETIC_MAX_CLIPS:
        fail(
            f"data.synthetic.subjects {syn.subjects} x data.synthetic.clips {syn.clips} = "
            f"{syn.subjects * syn.clips} clips, above the limit of {SYNTHETIC_MAX_CLIPS} for "
            "generated data (it is for tests and demos)",
            kind="rule",
        )
    clip_bytes = syn.frames * syn.size * syn.size * 4 // 3 * 3
    if clip_bytes > SYNTHETIC_MAX_CLIP_BYTES:
        fail(
            f"data.synthetic.frames {syn.frames} and data.synthetic.size {syn.size}: one "
            f"generated clip would hold {_gib(clip_bytes)} of frames, above the limit of "
            f"{_gib(SYNTHETIC_MAX_CLIP_BYTES)}",
            kind="rule",
        )
    if layout.video and syn.size % 2:
        fail(
            f"data.synthetic.size: {syn.size} is odd; layout {syn.layout} writes H.264 videos "
            "(yuv420p), which need an even frame height",
            kind="rule",
        )
    if syn.others is None:
        return
    if syn.others >= syn.clips:
        fail(
            f"data.synthetic.others: {syn.others} of the {syn.clips} clips per subject outside "
            f"the classes leaves none in them; expected 0..{syn.clips - 1}",
            kind="rule",
        )
    if syn.others and not layout.has_others:
        fail(
            f"data.synthetic.others: layout {syn.layout} has no clips outside its classes (they "
            "come from folders); set 0 or null",
            kind="rule",
        )
