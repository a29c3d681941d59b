"""Where a dry run finds the face coverage of a data config: the summary of its last prepare.

A dry run reads annotations only (no media), so it cannot measure coverage; `mer prepare` (and
every sweep) records each data config's summary in `{data.cache_dir}/.coverage/{data key}.json`
(data key = mer.sweep.plan.data_key_of), and the dry run shows it where it exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.config import config_hash
from mer.data.keys import key_config
from mer.util.jsonio import write_json

if TYPE_CHECKING:
    from mer.config import DataConfig

log = logging.getLogger(__name__)


def coverage_file(data_cfg: DataConfig) -> Path:
    key = config_hash(key_config(data_cfg), 12)  # = mer.sweep.plan.data_key_of
    return Path(data_cfg.cache_dir).expanduser() / ".coverage" / f"{key}.json"


def record(data_cfg: DataConfig, cache: Path | None, key: str, faces: dict[str, Any]) -> None:
    """Keep the coverage summary where a dry run (which reads no media) finds it."""
    path = coverage_file(data_cfg)
    body = {"cache": str(cache), "key": key, "faces": faces}
    try:
        write_json(path, body)
    except OSError as exc:  # only the dry run's information is lost
        log.warning("%s: cannot record the face coverage (%s)", path, exc)


def known_coverage(data_cfg: DataConfig) -> dict[str, Any] | None:
    """The coverage summary of this data config's last prepare, when one was recorded here
    (the dry run's "where known"); None otherwise."""
    try:
        body = json.loads(coverage_file(data_cfg).read_text())
    except (OSError, ValueError):
        return None
    faces = body.get("faces")
    return dict(faces, cache=body.get("cache")) if isinstance(faces, dict) else None
