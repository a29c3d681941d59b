"""Where the search's Optuna studies live, what they are called and what they optimise.

Names and storage (`storage_url`, `study_name`, `open_storage`) are Ray-free and shared with
`mer report`: they live in mer.experiment.layout / mer.experiment.studies and are re-exported
here. The directions are the searcher's: maximize (the objective) then minimize for each of
`search.extra_objectives`.
"""

from __future__ import annotations

from mer.config import ExperimentConfig
from mer.experiment.layout import DEFAULT_STORAGE, storage_url, study_name
from mer.experiment.studies import open_storage

__all__ = ["DEFAULT_STORAGE", "directions", "open_storage", "storage_url", "study_name"]


def directions(cfg: ExperimentConfig) -> list[str]:
    assert cfg.search is not None
    return ["maximize"] + ["minimize"] * len(cfg.search.extra_objectives)
