"""Typed, validated experiment configuration: one pydantic model per sweep YAML section.

Validation is strict because a typo in a sweep that runs for a day on a cluster must fail in the
first second: an unknown key names its full path and the closest valid key; a wrong type or
range names the key and what was expected (types: mer.config.types; rules across keys:
mer.config.checks). Every section validates when it is built, whoever builds it.

The raw (user-written) mapping is kept beside the typed config (`ExperimentConfig.raw`, not a
field, never serialised) so that ablation variants, which are dotted overrides, are applied to what
the user wrote (a variant that switches `model.preset` gets that preset's defaults, not the base
preset's values re-expanded).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from mer.config import checks
from mer.config.base import ConfigModel
from mer.config.checks import DEFAULT_CLASS_WEIGHTS
from mer.config.types import (
    Bool,
    BoundedLater,
    ClassWeights,
    Float,
    Int,
    Str,
    checked,
    fail,
    in_range,
    list_of,
    mapping_of,
    one_of,
    registered,
)
from mer.datasets import registry
from mer.datasets.facs import AU_CODE
from mer.datasets.spec import DatasetSpec

# Integers and numbers with bounds, as they read in messages ("[1, inf]", "[0.0, 0.99]").
Count = Annotated[Int, in_range(1)]
NonNegative = Annotated[Int, in_range(0)]
NonNegativeFloat = Annotated[Float, in_range(0.0)]
Fraction = Annotated[Float, in_range(0.0, 1.0)]
Dropout = Annotated[Float, in_range(0.0, 0.99)]
IntList = list_of(Int, "integers")
StrList = list_of(Str, "strings")
Widths = Annotated[IntList, checked(checks.layer_widths)]


# ----------------------------------------------------------------------------------------- data
class FramesConfig(ConfigModel):
    """Which T frames a clip contributes (mer.data.frames).

    `window`: the frames the selection looks at. `annotated`: only onset..offset, which a
    recording holding several expressions needs (CAS(ME)^3: one folder per task, several
    micro-expressions in it); `clip`: the whole media (the original's per-clip folders and
    videos); `auto`: annotated where a recording holds several clips (the dataset's
    `shared_media`: CAS(ME)^3, and the synthetic casme3 layout), clip otherwise.
    `onset_apex_offset` always selects inside the annotated window. `skip`: frames dropped at
    the start of the window before selecting (the original's deception input is frames 5-20:
    skip 5, count 16, select first).
    """

    SECTION: ClassVar[str] = "data.frames"
    count: Count = 30
    select: one_of("motion_topk", "uniform", "first", "onset_apex_offset") = "motion_topk"
    window: one_of("auto", "annotated", "clip") = "auto"
    skip: NonNegative = 0


class RegionsConfig(ConfigModel):
    """Where branch B's input comes from. `au_oracle` reads ground-truth AUs (oracle input)."""

    SECTION: ClassVar[str] = "data.regions"
    landmarks: one_of("dlib", "annotated", "none") = "dlib"
    policy: one_of("au_oracle", "all", "fixed", "none") = "au_oracle"
    au_codes: Annotated[IntList, checked(checks.au_codes_known)] = Field(
        default_factory=lambda: list(AU_CODE)
    )
    margin: Fraction = 0.0
    keep_aspect: Bool = False
    no_face: one_of("error", "whole_frame") = "error"
    upsample: Annotated[Int, in_range(0, 4)] = 1


class FacesConfig(ConfigModel):
    """Face detection, tracking, coverage and registration (mer.data.faces; README "Faces").

    `min_score` and `track` apply to dlib detections: detections scoring below `min_score` are
    ignored, and across a clip one face is followed (the detection overlapping the track wins
    over a more confident one elsewhere, which counts as an off-track detection). `boxes`:
    `per_frame` crops each frame with its own landmarks (the original), `per_clip` with one box
    per clip from the median landmarks of its frames with a face (no landmark jitter); `auto`:
    per_clip for detected landmarks (dlib), per_frame for exact ones (annotated). `global`:
    branch A is the whole `frame` (the original) or the tracked `face` box (`margin` of its size
    added on each side, square) before resizing. Coverage = selected frames with the tracked
    face / frames selected; a clip below `min_coverage` is an `error`, `exclude`d (listed in
    the manifest, plan.json and the report) or kept with a warning (`keep`).

    Defaults measured on real video (README, data section): real faces score 0.83-2.6, false
    detections at most 0.12. Every value that reproduces the original is available: min_score
    0, track false, boxes per_frame, global frame.
    """

    SECTION: ClassVar[str] = "data.faces"
    # What mer did before this section existed (YAML keys): a sweep started then resumes only
    # where these settings prepare the same data as today's (mer.data.cache.legacy_changes).
    LEGACY: ClassVar[dict[str, Any]] = {
        "min_score": 0.0, "track": False, "boxes": "per_frame", "global": "frame",
        "min_coverage": 0.0, "on_low_coverage": "keep",
    }  # fmt: skip
    min_score: NonNegativeFloat = 0.5
    track: Bool = True
    boxes: one_of("auto", "per_frame", "per_clip") = "auto"
    global_: one_of("frame", "face") = Field(default="frame", alias="global")
    margin: Fraction = 0.1
    min_coverage: Fraction = 0.5
    on_low_coverage: one_of("error", "exclude", "keep") = "error"


# `global` is a Python keyword: the field is `global_`; the YAML key also reads as an attribute
# (getattr(cfg.data.faces, "global")), as every other key does.
setattr(FacesConfig, "global", property(lambda self: self.global_, doc="data.faces.global"))  # noqa: B010


class SourceConfig(ConfigModel):
    """One dataset's files inside a composite (megc2019): media root and its annotation file."""

    SECTION: ClassVar[str] = "data.sources.<part>"
    root: Str | None = None
    annotations: Str | None = None


class SyntheticConfig(ConfigModel):
    """Parameters of the generated dataset when `data.dataset: synthetic`."""

    SECTION: ClassVar[str] = "data.synthetic"
    layout: registered(registry.with_synthetic_layout) = "casme2"
    # Bounded (here and in checks.synthetic_rules: clips in all, bytes of frames per clip):
    # synthetic data is for tests and demos, generated (also by a dry run) into memory and onto
    # disk; a typo like 10^6 subjects must fail, not fill both.
    subjects: Annotated[Int, in_range(1, 1000)] = 6
    clips: Annotated[Int, in_range(1, 999)] = 9
    frames: Annotated[Int, in_range(2)] = 24
    size: Annotated[Int, in_range(32)] = 96
    seed: NonNegative = 0
    intensity: NonNegativeFloat = 1.0
    # Clips per subject coded "others" (dropped by 3-class schemes); null = the generator's
    # default (one per subject when clips >= 4), 0 = every clip in the three classes.
    others: NonNegative | None = None
    # scene: head in its surroundings, face ~60 % of the frame height (CASME II RAW); face: square
    # frames filled by the face, AU motion zoomed with it (CASME II Cropped).
    framing: one_of("scene", "face") = "scene"

    @model_validator(mode="after")
    def _rules(self) -> SyntheticConfig:
        checks.synthetic_rules(self)
        return self

    def generator_args(self) -> dict[str, Any]:
        """The generator's keyword arguments (mer.datasets.synthetic.dataset_params) but the
        layout."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "layout"}


class DataConfig(ConfigModel):
    """The data section. Keys added after the first configs were hashed (`ADDED_FIELDS`) count in
    the config hash and the cache key only when set to something else than their default.

    `invalid_rows`: what an invalid annotation row does (official sheets carry errata:
    mer/datasets/problems.py). `error` (default): the read stops and lists every invalid row
    at once; `exclude`: those rows are left out and listed in the dry run, plan.json,
    summary.md and the report. `expressions`: micro (default), macro or all, for a sheet that
    codes both (CAS(ME)^2); other datasets accept only micro. `label_list`: the list file of a
    label scheme that reads one (`megc2019_official`: the official MEGC2019 list).
    """

    SECTION: ClassVar[str] = "data"
    # Added after the recorded hashes (tests/test_config_hashes.py): left out of the canonical
    # form (config_hash, cache keys) while at their default, so earlier configs are unchanged.
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"faces", "invalid_rows", "expressions", "label_list", "on_bad_clip"}
    )
    dataset: registered(registry.dataset_choices) = "casme2"
    root: Str | None = None
    annotations: Str | None = None
    sources: mapping_of(SourceConfig, "a mapping") = Field(default_factory=dict)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    labels: Annotated[Str, checked(checks.label_scheme)] = "megc3"
    frames: FramesConfig = Field(default_factory=FramesConfig)
    size: Annotated[Int, in_range(8)] = 128
    regions: RegionsConfig = Field(default_factory=RegionsConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    video_backend: one_of("decord", "av") = "decord"
    # A clip that cannot be prepared (unreadable media, no face with no_face: error, ...): `error`
    # stops the prepare after every clip was tried, listing all failures; `exclude` leaves them
    # out, listed with the reason in the manifest, plan.json and the report.
    on_bad_clip: one_of("error", "exclude") = "error"
    cache_dir: Str = "~/.cache/mer"
    invalid_rows: one_of("error", "exclude") = "error"
    expressions: one_of("micro", "macro", "all") = "micro"
    label_list: Str | None = None

    @model_validator(mode="after")
    def _rules(self) -> DataConfig:
        checks.data_rules(self)
        return self

    @property
    def is_synthetic(self) -> bool:
        """Generated data (`dataset: synthetic`), written in `synthetic.layout`."""
        return self.dataset == registry.SYNTHETIC

    @property
    def spec(self) -> DatasetSpec:
        """The dataset whose files are read: for generated data, its layout's."""
        return registry.get(self.synthetic.layout if self.is_synthetic else self.dataset)


# ------------------------------------------------------------------------------------- protocol
class ProtocolConfig(ConfigModel):
    SECTION: ClassVar[str] = "protocol"
    split: Annotated[Str, checked(checks.split_syntax)] = "loso"
    selection: one_of("fixed_epochs", "inner_val", "oracle_test") = "fixed_epochs"
    val_subjects: NonNegative = 0
    folds: StrList = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> ProtocolConfig:
        checks.protocol_rules(self)
        return self


# ---------------------------------------------------------------------------------------- model
class ModelConfig(ConfigModel):
    """Every architectural switch. Defaults are the paper's CASME II configuration."""

    SECTION: ClassVar[str] = "model"
    preset: Annotated[Str, checked(checks.preset_name)] | None = "casme2"
    in_channels: Count = 3
    num_classes: Annotated[Int, in_range(2)] = 3
    branches: one_of("single", "dual") = "dual"
    conv_a_channels: Count = 32
    conv_a_kernel: Count = 5
    conv_b_channels: Count = 32
    conv_b_kernel: Count = 3
    merge_channels: Count = 64
    merge_kernel: Count = 3
    pool: Count = 3
    attention: one_of("none", "cbam", "ec_cbam", "ec_cbam_sum", "ec_cbam_sequential") = "ec_cbam"
    attention_reduction: Count = 8
    dense: Widths = Field(default_factory=lambda: [128, 64])
    dropout: Dropout = 0.5
    dense_out_dropout: Dropout = 0.0  # after the last per-step Linear (deception script: 0.3)
    recurrent: one_of("none", "gru", "lstm") = "gru"
    recurrent_units: Count = 512
    pooling: one_of("msmh", "mha", "msmh_mha", "mean", "last") = "msmh"
    msmh_scales: IntList = Field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256])
    mha_heads: Count = 8
    mha_key_dim: NonNegative = 0  # per-head width; 0 = d // mha_heads (Keras scripts: 512)
    mha_causal: Bool = False
    head: Widths = Field(default_factory=lambda: [128, 64])
    head_in_dropout: Dropout = 0.0  # before the first head Linear (deception script: 0.3)
    head_dropout: Dropout = 0.0
    leaky_slope: Fraction = 0.2
    init: one_of("keras", "torch") = "keras"

    @model_validator(mode="after")
    def _rules(self) -> ModelConfig:
        checks.model_rules(self)
        return self


# ---------------------------------------------------------------------------------------- train
class AugmentConfig(ConfigModel):
    SECTION: ClassVar[str] = "train.augment"
    flip: Bool = False
    rotate: Annotated[Float, in_range(0.0, 45.0)] = 0.0
    brightness: Fraction = 0.0


class TrainConfig(ConfigModel):
    """The training section. `on_nan`: what a non-finite training loss (NaN or infinite, an lr
    far too high) does: `error` stops the fold with an error naming the epoch, so the trial fails
    and its variant is marked INCOMPLETE instead of scoring a diverged model; `ignore` trains on
    as mer did before the check existed."""

    SECTION: ClassVar[str] = "train"
    # Added after the recorded hashes (tests/test_config_hashes.py): hashed only when not default.
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset({"on_nan"})
    epochs: Count = 200
    batch_size: Count = 8
    lr: Annotated[NonNegativeFloat, checked(checks.learning_rate)] = 1.0e-3
    betas: Annotated[list_of(BoundedLater, "numbers"), checked(checks.adam_betas)] = Field(
        default_factory=lambda: [0.9, 0.999]
    )
    eps: NonNegativeFloat = 1.0e-7
    lr_step: NonNegative = 40
    lr_gamma: Fraction = 0.9
    loss: one_of("wce", "ce") = "wce"
    class_weights: Annotated[ClassWeights, checked(checks.class_weight_values)] = Field(
        default_factory=lambda: list(DEFAULT_CLASS_WEIGHTS)
    )
    l2: NonNegativeFloat = 0.01
    scaling: one_of("fixed", "train_stats") = "fixed"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    device: one_of("auto", "cpu", "cuda") = "auto"
    precision: one_of("auto", "fp32", "bf16") = "auto"
    channels_last: one_of("auto", "on", "off") = "auto"
    # conv3d: cuDNN's 3D kernels; t2d: each stride-1 Conv3d as one Conv2d over time-stacked frames
    # (same function and state dict; mer/training/fastpath.py, measured by bench/throughput.py)
    conv_impl: one_of("conv3d", "t2d") = "conv3d"
    compile: Bool = False
    eval_every: Count = 1
    # a sweep trial's Tune checkpoint every this many epochs, at most once a minute per trial
    # (mer.sweep.trial.MIN_CHECKPOINT_INTERVAL_S: keeps Tune from forcing experiment snapshots)
    checkpoint_every: NonNegative = 10
    threads: NonNegative = 0
    on_nan: one_of("error", "ignore") = "error"


# --------------------------------------------------------------------------------------- search
class ObjectiveConfig(ConfigModel):
    SECTION: ClassVar[str] = "search.objective"
    metric: one_of("uf1", "uar", "acc") = "uf1"
    on: one_of("inner_val") = "inner_val"


class SearchConfig(ConfigModel):
    """The search section. `space` is kept as written: mer.sweep.space parses and checks it."""

    SECTION: ClassVar[str] = "search"
    sampler: one_of("tpe", "random", "nsga2") = "tpe"
    trials: Count = 20
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    extra_objectives: list_of(one_of("params", "gflops"), "one of 'params', 'gflops'") = Field(
        default_factory=list
    )
    space: mapping_of(mapping_of(Any), "a mapping") = Field(default_factory=dict)
    pruner: one_of("wilcoxon", "none") = "wilcoxon"
    pruner_p: Fraction = 0.1  # WilcoxonPruner p-value threshold (larger prunes sooner)
    concurrent_configs: Count = 2
    storage: Str | None = None
    seed: Int = 0
    # Subjects set aside before the search (label-free draw from `seed`): in no search fold, then
    # each variant's best configuration is tested LOSO on them (PROTOCOL.md §4.1). 0: none, and
    # then no clean test estimate of the chosen configuration exists.
    holdout_subjects: NonNegative = 0
    evaluate_holdout: Bool = True  # run that evaluation at the end of the search


# ------------------------------------------------------------------------------- run management
class ResourcesConfig(ConfigModel):
    """Per-trial Ray resources. `wait_for_gpus`: with no GPU node up when the sweep starts, keep
    each trial's GPU share and wait for an autoscaler to start GPU workers (true), or run the
    trials on CPU (false); null: wait when the autoscaler's node types offer GPUs."""

    SECTION: ClassVar[str] = "resources"
    gpu_per_trial: NonNegativeFloat = 0.25
    cpu_per_trial: NonNegativeFloat = 1.0
    max_concurrent: NonNegative = 0
    max_failures: NonNegative = 2
    wait_for_gpus: Bool | None = None

    @model_validator(mode="after")
    def _rules(self) -> ResourcesConfig:
        if self.cpu_per_trial == 0 and self.gpu_per_trial == 0:
            fail(
                "resources.cpu_per_trial: 0 with gpu_per_trial 0: a trial would ask Ray for "
                "nothing, which it cannot schedule; set cpu_per_trial > 0 (e.g. 1)",
                kind="rule",
            )
        return self


class WandbConfig(ConfigModel):
    """W&B tracking of a sweep. `granularity`: `trial` (default) logs one run per trial plus
    one summary run per variant; `variant` logs only the variant summary runs, each with its
    per-fold table and per-fold training curves (for studies where thousands of trial runs
    would bury the dashboard). Not hashed: it changes what is logged, no computed number."""

    SECTION: ClassVar[str] = "tracking.wandb"
    project: Str = "mer"
    entity: Str | None = None
    mode: one_of("offline", "online", "disabled") = "offline"
    tags: StrList = Field(default_factory=list)  # added to every run of the sweep
    granularity: one_of("trial", "variant") = "trial"
    UNHASHED: ClassVar[frozenset[str]] = frozenset({"granularity"})


class TrackingConfig(ConfigModel):
    SECTION: ClassVar[str] = "tracking"
    wandb: WandbConfig = Field(default_factory=WandbConfig)


class ReportConfig(ConfigModel):
    """How results are reported: the intervals and paired comparisons of every result table
    (mer.experiment.uncertainty), nothing that training sees. Not part of the config hash
    (mer.config.plain.config_hash): changing a report setting changes no trained number.

    `n_boot` subject resamples per interval, `n_perm` subject swaps per paired permutation test
    (exact enumeration instead when a comparison has at most 16 subjects), `seed` the one seed of
    both, `level` the intervals' coverage, `alpha` the family-wise error rate of the Holm-adjusted
    comparisons, `method` the bootstrap interval ("expanded" percentile, or "percentile"),
    `reference` the variant every other label-free variant is compared with (null: `full` when it
    is label-free, else the first label-free variant). `holdout_of`: set by a search in the
    hold-out evaluation it generates (search/holdout.yaml): that sweep's `protocol.folds` are the
    search's held-out subjects by design, so it is not a partial run."""

    SECTION: ClassVar[str] = "report"
    n_boot: Annotated[Int, in_range(100)] = 10_000
    n_perm: Annotated[Int, in_range(100)] = 10_000
    seed: NonNegative = 0
    level: Annotated[Float, in_range(0.5, 0.999)] = 0.95
    alpha: Annotated[Float, in_range(0.001, 0.5)] = 0.05
    method: one_of("expanded", "percentile") = "expanded"
    reference: Str | None = None
    holdout_of: Str | None = None


Ablations = Annotated[
    mapping_of(mapping_of(Any), "a mapping"),
    BeforeValidator(checks.ablations_shape),
    checked(checks.ablation_rules),
]


class ExperimentConfig(ConfigModel):
    SECTION: ClassVar[str] = ""
    name: Annotated[Str, checked(checks.sweep_name)] = "experiment"
    data: DataConfig = Field(default_factory=DataConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ablations: Ablations = Field(default_factory=lambda: {"full": {}})
    search: SearchConfig | None = None
    seeds: Annotated[IntList, checked(checks.seed_list)] = Field(default_factory=lambda: [0])
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output: Str = "results"
    report: ReportConfig = Field(default_factory=ReportConfig)
    # Sections that describe how results are shown, not what is computed: left out of
    # config_hash, so adding them kept every recorded hash (tests/test_config_hashes.py).
    UNHASHED: ClassVar[frozenset[str]] = frozenset({"report"})
    # What the user wrote (after --set overrides): variants are applied to this. Not a field:
    # not validated, serialised, hashed or compared.
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> ExperimentConfig:
        checks.check_experiment(self)
        return self

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def variants(self) -> list[str]:
        return list(self.ablations)

    def __eq__(self, other: object) -> bool:
        """Equal values (the raw mapping a config was loaded from does not count)."""
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]  # mutable contents, as before

    def __setstate__(self, state: dict[str, Any]) -> None:
        """See ConfigModel.__setstate__; the dataclass version kept `raw` as a field."""
        legacy = "__pydantic_fields_set__" not in state
        super().__setstate__(state)
        if legacy:
            self.__pydantic_private__["_raw"] = state.get("raw") or {}  # type: ignore[index]
