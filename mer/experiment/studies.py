"""Opening a search's Optuna studies (storage and names: mer.experiment.layout).

Storage is an Optuna journal file, `OUT/search/study.journal` unless `search.storage` names
another journal path or an RDB URL (`sqlite:///...`, needs sqlalchemy); optuna-dashboard opens
either. One study per variant (`layout.study_name`). The searcher, the search summary and
`mer report` all open the studies through these helpers, so they agree. Optuna is imported when
a study is opened: reading a results folder does not need it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.errors import ConfigError
from mer.experiment.layout import storage_url, study_name

if TYPE_CHECKING:
    from mer.config import ExperimentConfig

log = logging.getLogger(__name__)


def open_storage(url: str) -> Any:
    """An Optuna storage for a journal file path or an RDB URL (ConfigError when unusable)."""
    # lazy: optuna takes ~0.5 s to import; reports of sweeps that never searched skip it
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as exc:
            raise ConfigError(
                f"search.storage: {url!r} needs sqlalchemy ({exc}); pip install sqlalchemy, or "
                "give a journal file path instead"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any driver error is the user's URL
            raise ConfigError(f"search.storage: cannot open {url!r} ({exc})") from None
    path = Path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise ConfigError(f"search.storage: cannot use journal file {path} ({exc})") from None


def load_studies(
    cfg: ExperimentConfig, out_dir: str | Path, variants: Iterable[str]
) -> dict[str, Any]:
    """The Optuna study of each searched variant that has one (a variant not searched yet has
    none)."""
    import optuna  # lazy: as in open_storage

    storage = open_storage(storage_url(cfg, out_dir))
    studies = {}
    for variant in variants:
        try:
            studies[variant] = optuna.load_study(
                study_name=study_name(cfg, variant), storage=storage
            )
        except KeyError:
            log.info("no study for variant %s yet", variant)
    return studies
