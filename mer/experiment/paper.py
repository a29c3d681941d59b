"""The paper's reported numbers (MODEL.md §7), keyed by the configuration that produced them.

A run is shown beside a paper number only when its resolved variant config IS that configuration:
the same real dataset, label scheme, frames (count, selection, skip) and input size, region policy
(with every AU allowed to pick the crop), the original's face handling (`original_faces`), model
(the preset plus the ablation's switches, compared field by field after the preset is expanded),
loss, split and epoch selection. The variant's name
plays no part: a label-free variant named `full` is not the paper's `full`, and a synthetic
dataset in CASME II's layout is not CASME II.

The paper's numbers come from the original code's protocol: per-subject scores averaged over
subjects with the epoch chosen on the test subject (`protocol.selection: oracle_test`), so the
configuration that reproduces them is an [oracle] run. They are shown beside it, never compared
with it as equals: mer pools predictions over folds (MEGC2019). A partial or subject-dependent run,
and a search's hold-out evaluation, test other subjects than the paper did: no paper numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mer.config import MODEL_PRESETS, DataConfig, ExperimentConfig, ModelConfig
from mer.data.faces.registration import resolve_boxes
from mer.data.regions import NEEDS_LANDMARKS
from mer.datasets.facs import AU_CODE

PAPER_NOTE = (
    "paper: the original's per-subject scores averaged over subjects with the best epoch chosen on "
    "the test subject (MODEL.md §7), shown only beside a run of the same configuration; not "
    "comparable with pooled LOSO numbers"
)


@dataclass(frozen=True)
class PaperConfig:
    """One configuration the paper reports, and its numbers."""

    name: str  # how the paper calls it, e.g. "SMIC single branch, CE"
    dataset: str
    preset: str
    labels: str
    frames: tuple[int, str, int]  # data.frames count, select, skip
    regions: str  # data.regions.policy (au_oracle: with every AU code, as the original)
    numbers: dict[str, float]
    model: dict[str, Any] = field(default_factory=dict)  # model.* switches on the preset
    loss: str = "wce"
    split: str | None = "loso"  # None: the paper does not say
    selection: str = "oracle_test"
    size: int = 128

    def model_config(self) -> ModelConfig:
        return ModelConfig.model_validate(
            {**MODEL_PRESETS[self.preset], **self.model, "preset": self.preset}
        )

    def matches(self, cfg: ExperimentConfig) -> bool:
        d, p = cfg.data, cfg.protocol
        frames = (d.frames.count, d.frames.select, d.frames.skip)
        same_data = (
            d.dataset == self.dataset
            and d.labels == self.labels
            and frames == self.frames
            and d.size == self.size
            and d.regions.policy == self.regions
        )
        if not same_data or (
            self.regions == "au_oracle" and sorted(d.regions.au_codes) != sorted(AU_CODE)
        ):
            return False
        if not original_faces(d):
            return False
        if p.selection != self.selection or (self.split is not None and p.split != self.split):
            return False
        return cfg.train.loss == self.loss and cfg.model == self.model_config()


def original_faces(d: DataConfig) -> bool:
    """The original code's face handling: branch A is the whole frame, no clip is left out for
    its face coverage, and where landmarks place the region crops, dlib's best detection at any
    score, untracked, boxes from each frame's landmarks (data.faces: FacesConfig.LEGACY)."""
    f = d.faces
    if f.global_ != "frame" or f.on_low_coverage == "exclude":
        return False
    if d.regions.policy not in NEEDS_LANDMARKS:
        return True
    boxes = resolve_boxes(f.boxes, d.regions.landmarks)
    return f.min_score == 0.0 and not f.track and boxes == "per_frame"


_SMIC = {"dataset": "smic", "preset": "smic", "labels": "megc3", "frames": (10, "first", 0)}
_SINGLE = {"branches": "single", "attention": "none"}
_SMIC_ROWS = [
    ("SMIC, full model (dual, EC-CBAM, GRU, MSMH)", {}, "wce", {"uf1": 0.745, "uar": 0.751}),
    ("SMIC, single branch, CE", {**_SINGLE, "recurrent": "none", "pooling": "mean"}, "ce",
     {"uf1": 0.517, "uar": 0.533}),
    ("SMIC, single branch, WCE", {**_SINGLE, "recurrent": "none", "pooling": "mean"}, "wce",
     {"uf1": 0.559, "uar": 0.563}),
    ("SMIC, single branch, WCE + LSTM", {**_SINGLE, "recurrent": "lstm", "pooling": "last"},
     "wce", {"uf1": 0.686, "uar": 0.702}),
    ("SMIC, single branch, WCE + GRU", {**_SINGLE, "pooling": "last"}, "wce",
     {"uf1": 0.703, "uar": 0.715}),
    ("SMIC, single branch, WCE + GRU + CBAM", {"branches": "single", "attention": "cbam",
     "pooling": "last"}, "wce", {"uf1": 0.656, "uar": 0.681}),
    ("SMIC, dual, CBAM", {"attention": "cbam", "pooling": "last"}, "wce",
     {"uf1": 0.692, "uar": 0.721}),
    ("SMIC, dual, EC-CBAM", {"pooling": "last"}, "wce", {"uf1": 0.732, "uar": 0.737}),
    ("SMIC, dual, EC-CBAM + multi-head attention", {"pooling": "mha", "mha_heads": 8,
     "mha_key_dim": 512}, "wce", {"uf1": 0.692, "uar": 0.722}),
]  # fmt: skip
PAPER_CONFIGS: tuple[PaperConfig, ...] = (
    *(
        PaperConfig(name, **_SMIC, regions="none", model=model, loss=loss, numbers=numbers)
        for name, model, loss, numbers in _SMIC_ROWS
    ),
    PaperConfig("SAMM, full model, AU crops", "samm", "samm", "megc3", (30, "uniform", 0),
                "au_oracle", {"uf1": 0.860, "uar": 0.885}),
    PaperConfig("SAMM, AU crops off", "samm", "samm", "megc3", (30, "uniform", 0), "none",
                {"uf1": 0.720}),
    PaperConfig("CASME II, full model, AU crops", "casme2", "casme2", "megc3",
                (30, "motion_topk", 0), "au_oracle", {"uf1": 0.944, "uar": 0.956}),
    PaperConfig("CASME II, AU crops off", "casme2", "casme2", "megc3", (30, "motion_topk", 0),
                "none", {"uf1": 0.818}),
    PaperConfig("CAS(ME)^3, full model, AU crops", "casme3", "casme3", "casme3_3",
                (30, "motion_topk", 0), "au_oracle", {"uf1": 0.8036, "uar": 0.8161}),
    PaperConfig("real-life deception, full model", "deception", "deception", "deception2",
                (16, "first", 5), "none", {"acc": 0.8360}, split=None),
)  # fmt: skip


def paper_config(cfg: ExperimentConfig) -> PaperConfig | None:
    """The paper configuration a resolved variant config is, or None (real datasets only)."""
    if cfg.data.dataset == "synthetic":
        return None
    return next((p for p in PAPER_CONFIGS if p.matches(cfg)), None)


def paper_by_name(name: str | None) -> PaperConfig | None:
    """A PaperConfig by its name as plan.json records it."""
    return next((p for p in PAPER_CONFIGS if p.name == name), None) if name else None
