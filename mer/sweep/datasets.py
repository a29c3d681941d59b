"""The sweep's data, prepared once per distinct data section on the driver.

Variants whose `data` sections mean the same arrays (mer.experiment.plan.data_key) share one
prepared dataset, which the session then puts into Ray's object store for every trial.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from mer.config import ExperimentConfig
from mer.data.cache import prepare_data
from mer.experiment import plan as plan_mod

log = logging.getLogger(__name__)


def prepare_datasets(
    vcfgs: dict[str, ExperimentConfig], used_by: str | None = None
) -> dict[str, Any]:
    """PreparedData per distinct data section (built or read from the cache, once); `used_by`
    (the sweep's folder) is recorded for `mer cache list`. Variants read the same annotations:
    each repeated log line (the sheet, the label scheme's drops) is shown once, and one line sums
    the data up."""
    data: dict[str, Any] = {}
    t0 = time.monotonic()
    with each_line_once():
        for name, vcfg in vcfgs.items():
            key = plan_mod.data_key(vcfg)
            if key not in data:
                t1 = time.monotonic()
                data[key] = prepare_data(vcfg.data, used_by=used_by)
                log.debug(
                    "data %s (first used by %s): %d clips ready in %.1f s",
                    key, name, len(data[key].samples), time.monotonic() - t1,
                )  # fmt: skip
    clips = sorted({len(d.samples) for d in data.values()})
    log.info(
        "data: %d prepared dataset(s) for %d variant(s), %s clips, ready in %.1f s",
        len(data), len(vcfgs), "/".join(map(str, clips)), time.monotonic() - t0,
    )  # fmt: skip
    return data


class _Once(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def each_line_once() -> Any:
    """Within the block, a log line identical to one already shown is not shown again. Each
    handler has its own memory: a line the console showed still reaches a log file."""
    filters = {h: _Once() for h in logging.getLogger().handlers}
    for h, once in filters.items():
        h.addFilter(once)
    try:
        yield
    finally:
        for h, once in filters.items():
            h.removeFilter(once)
