"""The labels a planned variant carries besides [oracle] (mer.experiment.plan.oracle_reasons):
partial (its folds test fewer subjects than the protocol has), subject-dependent (clips stand in
for subjects) and the paper configuration it is (mer.experiment.paper), and the check that the
configured comparison reference is a label-free variant. Set once at plan time and recorded in
plan.json, so the summary, the report, W&B and a later `mer report` read the same labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mer.config import ExperimentConfig
from mer.config.checks import check_report_reference
from mer.errors import ConfigError
from mer.experiment.paper import paper_config

if TYPE_CHECKING:
    from mer.experiment.plan import SweepPlan, VariantPlan


def subject_dependent_reason(cfg: ExperimentConfig) -> str | None:
    """Why a variant's "subjects" are clips (so one person can be in training and test), or
    None: the deception reader without a subject CSV makes each clip its own subject."""
    if cfg.data.dataset == "deception" and not cfg.data.annotations:
        return (
            "deception without a subject CSV (data.annotations): each clip is its own subject, so "
            "leave-one-subject-out is leave-one-clip-out and the same person can be in training "
            "and test (not subject independent)"
        )
    return None


def count_subjects(samples: pd.DataFrame, rows: np.ndarray) -> int:
    return int(samples["subject"].iloc[rows].astype(str).nunique()) if len(rows) else 0


def label_variant(vp: VariantPlan, samples: pd.DataFrame) -> None:
    """Subjects tested and testable, subject dependence and the paper configuration of a
    planned variant."""
    vp.subjects_total = int(samples["subject"].astype(str).nunique()) - len(vp.holdout)
    vp.subjects_tested = min(
        len({s for f in folds for s in f.test_subjects}) for folds in vp.folds.values()
    )
    vp.subject_dependent = subject_dependent_reason(vp.cfg)
    search = vp.cfg.search is not None
    plain = not (vp.partial or vp.subject_dependent or vp.cfg.report.holdout_of or search)
    found = paper_config(vp.cfg) if plain else None
    vp.paper = found.name if found is not None else None


def check_reference(plan: SweepPlan) -> None:
    """`report.reference` must be a label-free variant: an oracle reference would make every
    label-free variant look worse by what the oracle leaks (PROTOCOL.md §4.2-3)."""
    check_report_reference(plan.cfg)
    ref = plan.cfg.report.reference
    if ref is not None and ref in plan.variants and plan.variants[ref].oracle:
        raise ConfigError(
            f"report.reference: {ref!r} is an oracle variant "
            f"({'; '.join(plan.variants[ref].oracle_reasons)}); compare label-free variants "
            "with a label-free reference"
        )
