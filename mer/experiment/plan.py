"""The sweep plan: variants × folds × seeds, one trial each (its cost: mer.experiment.costs;
its dry-run text: mer.experiment.describe).

A plan is a pure function of the config and the sample tables, so `--dry-run` (annotations only,
no media) prints the same trials a real run executes. Fold row indices point into the sample
table the plan was built from; a real run builds its plan from the prepared data's own table so
those indices are the ones the trials use.

In search mode, `search.holdout_subjects` subjects per variant (`VariantPlan.holdout`, chosen by
`mer.protocol.holdout_subjects`) are in no fold of the plan: the search never sees them, and they
are tested after it (mer.sweep.search).

Ray-free: the sweep, the search, `mer report` and the debug path (`run_sweep.py --trial`) share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer.config import ExperimentConfig, config_hash, variant_config
from mer.data.cache import key_config
from mer.data.faces.table import uses_faces
from mer.errors import ConfigError
from mer.experiment import excluded, layout
from mer.experiment.costs import estimate_gpu_hours
from mer.experiment.labels import (
    check_reference,
    label_variant,
    subject_dependent_reason,  # noqa: F401 - mer train's name
)
from mer.experiment.layout import search_label  # noqa: F401 - its historical import path
from mer.models.summary import model_stats
from mer.protocol import Fold, fold_by_name, holdout_subjects, make_folds

log = logging.getLogger(__name__)

SamplesFn = Callable[[Any], tuple[pd.DataFrame, list[str]]]


@dataclass(frozen=True)
class TrialSpec:
    """One Tune trial: a variant's fold for one seed. `id` is also its readable trial name."""

    variant: str
    fold: str
    seed: int
    fold_index: int = 0

    @property
    def id(self) -> str:
        return layout.trial_id(self.variant, self.fold, self.seed)

    @property
    def fold_safe(self) -> str:
        return layout.fold_safe(self.fold)

    @property
    def safe(self) -> str:
        """File-system and Ray-directory form of `id`."""
        return layout.trial_safe(self.variant, self.fold, self.seed)

    @property
    def rel_dir(self) -> str:
        """Folder of this trial's files under `OUT/trials/`."""
        return layout.trial_rel_dir(self.variant, self.fold, self.seed)


@dataclass
class VariantPlan:
    name: str
    overrides: dict[str, Any]
    cfg: ExperimentConfig
    data_key: str  # config hash of the variant's data section: variants sharing it share a cache
    oracle_reasons: list[str]
    folds: dict[int, list[Fold]] = field(default_factory=dict)  # seed -> folds
    stats: dict[str, Any] | None = None  # model_stats: params, gflops
    holdout: list[str] = field(default_factory=list)  # search: subjects in no fold (sorted)
    # subjects the folds test (fewest over seeds) and subjects the protocol could test (the
    # sample table's, less a search's held-out ones): fewer tested = a partial run
    subjects_tested: int = 0
    subjects_total: int = 0
    subject_dependent: str | None = None  # why clips stand in for subjects (None: they do not)
    paper: str | None = None  # the paper configuration this variant is (mer.experiment.paper)

    @property
    def oracle(self) -> bool:
        return bool(self.oracle_reasons)

    @property
    def partial(self) -> bool:
        """Tests fewer subjects than the protocol has (`protocol.folds`), unless this sweep is a
        search's hold-out evaluation (`report.holdout_of`), whose folds are the held-out
        subjects by design."""
        return self.cfg.report.holdout_of is None and self.subjects_tested < self.subjects_total

    @property
    def tags(self) -> list[str]:
        """The labels after the oracle tag: partial, subject-dependent."""
        out = []
        if self.partial:
            out.append(layout.partial_tag(self.subjects_tested, self.subjects_total))
        return out + ([layout.SUBJECT_DEPENDENT_TAG] if self.subject_dependent else [])

    @property
    def wandb_tags(self) -> list[str]:
        """The same labels as W&B tags (oracle first)."""
        out = [layout.WANDB_ORACLE] if self.oracle else []
        out += [layout.WANDB_PARTIAL] if self.partial else []
        return out + ([layout.WANDB_SUBJECT_DEPENDENT] if self.subject_dependent else [])

    @property
    def label(self) -> str:
        """Name as shown in tables and W&B: oracle variants carry the tag (PROTOCOL.md §4.2),
        partial and subject-dependent ones theirs."""
        return layout.display_name(self.name, self.oracle, self.tags)

    def changes(self) -> str:
        return changes_text(self.overrides)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def changes_text(overrides: Mapping[str, Any] | None) -> str:
    """What a variant changes, as tables show it (`key=value, ...`, long values shortened)."""
    if not overrides:
        return "(base config)"
    return ", ".join(f"{k}={_short(v)}" for k, v in overrides.items())


@dataclass
class SweepPlan:
    cfg: ExperimentConfig
    variants: dict[str, VariantPlan]
    trials: list[TrialSpec]
    samples: dict[str, pd.DataFrame]  # data_key -> sample table the folds index
    class_names: dict[str, list[str]]
    # data_key -> face coverage summary (mer.data.faces.table.summary; None: not measured yet)
    faces: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # lookups by key, built on first use (a sweep of thousands of trials asks per result)
    _index: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def _lookup(self) -> dict[str, Any]:
        if self._index is None or self._index["n"] != len(self.trials):
            by_id: dict[str, TrialSpec] = {}
            by_key: dict[tuple[str, int | None], list[TrialSpec]] = {}
            for t in self.trials:
                by_id.setdefault(t.id, t)
                by_key.setdefault((t.variant, t.seed), []).append(t)
                by_key.setdefault((t.variant, None), []).append(t)
            self._index = {"n": len(self.trials), "id": by_id, "key": by_key}
        return self._index

    def spec(self, trial_id: str) -> TrialSpec:
        found = self._lookup()["id"].get(trial_id)
        if found is None:
            raise ConfigError(f"unknown trial {trial_id!r} (not in this sweep's plan)")
        return found

    def fold(self, spec: TrialSpec) -> Fold:
        return fold_by_name(self.variants[spec.variant].folds[spec.seed], spec.fold)

    def trials_of(self, variant: str, seed: int | None = None) -> list[TrialSpec]:
        """The variant's trials (of one seed), in plan order."""
        return list(self._lookup()["key"].get((variant, seed), []))

    @property
    def trial_ids(self) -> frozenset[str]:
        return frozenset(self._lookup()["id"])

    def __getstate__(self) -> dict[str, Any]:
        # trials get the plan pickled: the index is rebuilt where it is used
        return {**self.__dict__, "_index": None}

    def resolve_trial(self, text: str) -> TrialSpec:
        """`VARIANT/FOLD[/SEED]` (FOLD as named, its `__` form or its subject part; SEED as
        `3` or `s3`; default the first seed) → the planned trial."""
        parts = text.strip("/").split("/")
        if len(parts) < 2:
            raise ConfigError(f"--trial {text!r}: expected VARIANT/FOLD[/SEED], e.g. full/sub01/0")
        variant = parts[0]
        if variant not in self.variants:
            raise ConfigError(
                f"--trial {text!r}: unknown variant {variant!r}; this sweep has "
                f"{', '.join(self.variants)}"
            )
        vp = self.variants[variant]
        seeds = list(vp.folds)
        rest = parts[1:]
        candidates: list[tuple[str, int]] = [("/".join(rest), seeds[0])]
        last = rest[-1][1:] if rest[-1].startswith("s") else rest[-1]
        if len(rest) >= 2 and last.lstrip("-").isdigit():
            candidates.insert(0, ("/".join(rest[:-1]), int(last)))
        errors: list[str] = []
        for fold_text, seed in candidates:
            if seed not in vp.folds:
                errors.append(f"seed {seed} is not in this sweep (seeds: {seeds})")
                continue
            try:
                fold = fold_by_name(vp.folds[seed], fold_text.replace("__", "/"))
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            return TrialSpec(variant, fold.name, seed, fold.index)
        raise ConfigError(f"--trial {text!r}: {errors[0]}")

    # ---------------------------------------------------------------------------- serialising
    def to_json(self) -> dict[str, Any]:
        """What `plan.json` holds: enough to see (and count) what the sweep runs."""
        variants = {}
        subjects: dict[str, np.ndarray] = {}  # data key -> subject per sample row, as text
        counted: dict[int, int] = {}  # training subjects per fold object (variants share them)

        def train_subjects(key: str, f: Fold) -> int:
            if id(f) not in counted:
                if key not in subjects:
                    subjects[key] = self.samples[key]["subject"].astype(str).to_numpy()
                counted[id(f)] = int(np.unique(subjects[key][f.train]).size) if f.train.size else 0
            return counted[id(f)]

        for v in self.variants.values():
            variants[v.name] = {
                "label": v.label,
                "overrides": v.overrides,
                "oracle": v.oracle,
                "oracle_reasons": v.oracle_reasons,
                "data_key": v.data_key,
                "stats": v.stats,
                "holdout_subjects": list(v.holdout),
                "subjects_tested": v.subjects_tested,
                "subjects_total": v.subjects_total,
                "partial": v.partial,
                "subject_dependent": v.subject_dependent,
                "holdout_of": v.cfg.report.holdout_of,
                "tags": v.tags,
                "wandb_tags": v.wandb_tags,
                "paper": v.paper,
                "folds": {
                    str(seed): [
                        {
                            "name": f.name,
                            "index": f.index,
                            "train": int(f.train.size),
                            "val": int(f.val.size),
                            "test": int(f.test.size),
                            "val_subjects": list(f.val_subjects),
                            "train_subjects": train_subjects(v.data_key, f),
                        }
                        for f in folds
                    ]
                    for seed, folds in v.folds.items()
                },
            }
        return {
            "name": self.cfg.name,
            "mode": "search" if self.cfg.search is not None else "ablation",
            "seeds": list(self.cfg.seeds),
            "trials": [t.id for t in self.trials],
            "num_trials": len(self.trials),
            "variants": variants,
            "class_names": self.class_names,
            "faces": self.faces,
            "estimate": estimate_gpu_hours(self),
            "excluded_rows": excluded.plan_section(self.samples.values()),
        }


# ----------------------------------------------------------------------------------- building
def oracle_reasons(cfg: ExperimentConfig) -> list[str]:
    """Why a variant's results are oracle (PROTOCOL.md §4.2-3); empty when they are not."""
    reasons = []
    if cfg.protocol.selection == "oracle_test":
        reasons.append("epoch selected on the test subject (protocol.selection: oracle_test)")
    if cfg.data.regions.policy == "au_oracle" and cfg.model.branches == "dual":
        reasons.append("branch-B regions from ground-truth AUs (data.regions.policy: au_oracle)")
    return reasons


def data_key_of(data_cfg: Any) -> str:
    """Variants whose data sections mean the same arrays share one prepared dataset (settings
    the dataset or region policy ignores do not split it: `mer.data.cache.key_config`)."""
    return config_hash(key_config(data_cfg), 12)


def data_key(cfg: ExperimentConfig) -> str:
    return data_key_of(cfg.data)


def variant_configs(cfg: ExperimentConfig) -> dict[str, ExperimentConfig]:
    return {name: variant_config(cfg, name) for name in cfg.variants}


def build_plan(
    cfg: ExperimentConfig,
    samples_for: SamplesFn,
    *,
    stats_for: Callable[[ExperimentConfig], dict[str, Any] | None] | None = None,
    variants: Mapping[str, ExperimentConfig] | None = None,
    faces_for: Callable[[Any], dict[str, Any] | None] | None = None,
) -> SweepPlan:
    """Plan every (variant, fold, seed). `samples_for(data_cfg)` gives the labelled sample table
    and class names of a data section (annotations only for a dry run, the prepared data's table
    for a real one); it is called once per distinct data section, and so is `faces_for` where
    the section looks for faces or may exclude unusable clips: its face coverage summary with
    the clips excluded (None: not known yet; mer.data.faces.table)."""
    faces: dict[str, dict[str, Any] | None] = {}
    vcfgs = dict(variants) if variants is not None else variant_configs(cfg)
    samples: dict[str, pd.DataFrame] = {}
    class_names: dict[str, list[str]] = {}
    stats_cache: dict[str, dict[str, Any] | None] = {}
    # variants with the same data, protocol and hold-out share their fold objects: trials get
    # the plan pickled, and shared folds pickle once however many variants there are
    folds_cache: dict[str, list[Fold]] = {}
    out: dict[str, VariantPlan] = {}
    trials: list[TrialSpec] = []
    for name, vcfg in vcfgs.items():
        key = data_key(vcfg)
        if key not in samples:
            table, names = samples_for(vcfg.data)
            samples[key], class_names[key] = table, list(names)
            looks = uses_faces(vcfg.data)
            if faces_for is not None and (looks or vcfg.data.on_bad_clip == "exclude"):
                found = faces_for(vcfg.data)  # coverage, and the clips excluded (any reason)
                if looks or (found and found.get("excluded")):
                    faces[key] = found
            if len(names) != vcfg.model.num_classes:
                raise ConfigError(
                    f"ablations.{name}: the label scheme {vcfg.data.labels!r} has {len(names)} "
                    f"classes ({', '.join(names)}) but model.num_classes is "
                    f"{vcfg.model.num_classes}"
                )
        vp = VariantPlan(
            name=name,
            overrides=dict(cfg.ablations.get(name, {})),
            cfg=vcfg,
            data_key=key,
            oracle_reasons=oracle_reasons(vcfg),
        )
        vp.holdout = search_holdout(vcfg, samples[key])
        for seed in cfg.seeds:
            fkey = config_hash({"d": key, "p": vcfg.protocol, "s": seed, "h": vp.holdout})
            if fkey not in folds_cache:
                folds_cache[fkey] = _make_folds(samples[key], vcfg, seed, vp.holdout)
            vp.folds[seed] = folds_cache[fkey]
            if not vp.folds[seed]:
                raise ConfigError(f"ablations.{name}: the protocol gives no fold with test clips")
        label_variant(vp, samples[key])
        if stats_for is not None:
            skey = config_hash({"m": vcfg.model, "t": vcfg.data.frames.count, "s": vcfg.data.size})
            if skey not in stats_cache:
                stats_cache[skey] = stats_for(vcfg)
            vp.stats = stats_cache[skey]
        out[name] = vp
        for seed in cfg.seeds:
            trials += [TrialSpec(name, f.name, seed, f.index) for f in vp.folds[seed]]
    plan = SweepPlan(
        cfg=cfg, variants=out, trials=trials, samples=samples, class_names=class_names, faces=faces
    )
    check_reference(plan)
    return plan


def search_holdout(vcfg: ExperimentConfig, samples: pd.DataFrame) -> list[str]:
    """The subjects a search sets aside (`search.holdout_subjects`); none outside search mode."""
    if vcfg.search is None or not vcfg.search.holdout_subjects:
        return []
    return holdout_subjects(samples, vcfg.search.holdout_subjects, vcfg.search.seed)


def _make_folds(
    samples: pd.DataFrame, vcfg: ExperimentConfig, seed: int, held: list[str]
) -> list[Fold]:
    """make_folds without the held-out subjects; a fold error then says the hold-out caused it."""
    try:
        return make_folds(samples, vcfg.protocol, seed, exclude_subjects=held)
    except ConfigError as exc:
        if not held:
            raise
        left = samples["subject"].astype(str).nunique() - len(held)
        raise ConfigError(
            f"search.holdout_subjects: {len(held)} held-out subject(s) leave {left} for the "
            f"search folds: {exc}"
        ) from None


def model_stats_or_none(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """Parameters and forward GFLOPs per clip (mer.models.summary), for the GPU-hour estimate."""
    stats = model_stats(cfg)
    return {"params": int(stats["params"]), "gflops": float(stats["gflops"])}
