"""Optuna's own dashboard opens a search's journal (README: `optuna-dashboard
results/NAME/search/study.journal`). optuna-dashboard 0.21 opens a path that is a file without
a SQLite header as `JournalStorage(JournalFileBackend(file_path=path))`
(optuna_dashboard/_storage_url.py, `guess_storage_from_url`), then lists the studies and their
trials through the storage API: done here the same way on a journal a real search wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from mer.config import load_config  # noqa: E402
from mer.experiment.layout import DEFAULT_STORAGE, SEARCH_DIR, storage_url, study_name  # noqa: E402

SEARCH = Path(__file__).parent / "fixtures" / "legacy" / "search" / "out"


def _open_like_the_dashboard(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with path.open("rb") as f:
        assert f.read(16) != b"SQLite format 3\x00"  # else the dashboard asks for sqlite:///
    return JournalStorage(JournalFileBackend(file_path=str(path)))


def test_the_dashboard_opens_a_search_journal_with_its_configurations(tmp_path):
    out = tmp_path / "out"
    shutil.copytree(SEARCH, out)
    cfg = load_config(out / "config.yaml")
    journal = out / SEARCH_DIR / DEFAULT_STORAGE
    assert storage_url(cfg, out) == str(journal.resolve())  # where the README points
    storage = _open_like_the_dashboard(journal)

    studies = storage.get_all_studies()
    assert [s.study_name for s in studies] == [study_name(cfg, "full")]
    (study,) = studies
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    trials = storage.get_all_trials(study._study_id)
    best = json.loads((out / SEARCH_DIR / "best.json").read_text())["variants"]["full"]
    assert len(trials) == best["configs"] == 2
    states = sorted(t.state.name.lower() for t in trials)
    assert states == sorted(k for k, n in best["states"].items() for _ in range(n))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    (done,) = complete
    assert done.number == best["best"]["config_id"]
    assert done.params == best["best"]["overrides"]  # the searched keys, as the dashboard plots
    assert done.values == [pytest.approx(best["best"]["values"]["uf1"])]
