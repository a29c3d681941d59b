"""Where the search's Optuna studies live, what they are called and what they optimise.

Storage is an Optuna journal file, `OUT/search/study.journal` unless `search.storage` names
another journal path or an RDB URL (`sqlite:///...`, needs sqlalchemy); optuna-dashboard opens
either. One study per variant, `{cfg.name}/{variant}`; its directions are maximize (the
objective) then minimize for each of `search.extra_objectives`. The searcher, the search summary
and `mer report` all open the studies through these helpers, so they agree on all three.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.errors import ConfigError

DEFAULT_STORAGE = "study.journal"


def storage_url(cfg: ExperimentConfig, out_dir: str | Path) -> str:
    """The studies' storage: `search.storage` (URL or journal path) or OUT/search/study.journal."""
    spec = cfg.search.storage if cfg.search is not None else None
    if not spec:
        return str((Path(out_dir) / "search" / DEFAULT_STORAGE).resolve())
    if "://" in spec:
        return spec
    return str(Path(spec).expanduser().resolve())


def open_storage(url: str) -> Any:
    """An Optuna storage for a journal file path or an RDB URL (ConfigError when unusable)."""
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


def study_name(cfg: ExperimentConfig, variant: str) -> str:
    return f"{cfg.name}/{variant}"


def directions(cfg: ExperimentConfig) -> list[str]:
    assert cfg.search is not None
    return ["maximize"] + ["minimize"] * len(cfg.search.extra_objectives)
