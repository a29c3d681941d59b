"""How big prepared data will be, before any of it is decoded: refuse a build the cache's file
system cannot hold, or whose arrays cannot fit in this machine's memory, with the figure and the
keys that set it; and turn a full disk met half-way into a message that names the file.

Prepared arrays: clips x data.frames.count x data.size^2 x 3 channels (uint8), once for branch A
and once for branch B (policy none: branch A only). A build also keeps each finished clip's
result until the cache is complete (mer.data.clipstore), so the file system needs room for the
clips still to decode; when it cannot hold those and the final arrays together, the final arrays
take the place of the per-clip results as they are copied (`recycle`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mer.config import DataConfig
from mer.config.checks import prepared_clip_bytes
from mer.data import regions
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

N_LANDMARKS = 68
TABLE_BYTES_PER_CLIP = 2048  # samples.json and manifest, generously


def margin(need: int) -> int:
    """Room left free beyond an estimate (5 % and 1 MB): estimates are not exact, and the file
    system serves others too."""
    return need // 20 + (1 << 20)


def fmt_bytes(n: float) -> str:
    """`1.5 GB`, `320 MB`, `12 kB` (decimal units, as `df -H` shows them)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class Estimate:
    """Bytes of one data config's prepared data."""

    clips: int
    count: int  # data.frames.count
    size: int  # data.size
    branches: int
    clip_bytes: int  # one clip in the branch arrays
    extra_per_clip: int  # frame numbers, landmarks, table

    @classmethod
    def of(cls, data_cfg: DataConfig, clips: int) -> Estimate:
        count, size, policy = data_cfg.frames.count, data_cfg.size, data_cfg.regions.policy
        extra = count * 8 + TABLE_BYTES_PER_CLIP
        if policy in regions.NEEDS_LANDMARKS:
            extra += count * N_LANDMARKS * 2 * 4
        return cls(
            clips=clips,
            count=count,
            size=size,
            branches=1 if policy == "none" else 2,
            clip_bytes=prepared_clip_bytes(count, size, policy),
            extra_per_clip=extra,
        )

    @property
    def arrays(self) -> int:
        """The branch arrays (what a trial copies to its device)."""
        return self.clips * self.clip_bytes

    @property
    def total(self) -> int:
        """The finished cache folder."""
        return self.clips * (self.clip_bytes + self.extra_per_clip)

    def per_clip_results(self, clips: int) -> int:
        """Bytes of `clips` finished clips kept while the build runs."""
        return clips * (self.clip_bytes + self.extra_per_clip)

    def formula(self) -> str:
        return (
            f"{self.clips} clips x {self.count} frames (data.frames.count) x {self.size}^2 px "
            f"(data.size) x 3 channels x {self.branches} branch(es)"
        )


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the OS says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_memory(est: Estimate, memory: int | None = None) -> None:
    """Refuse arrays larger than this machine's memory: every trial copies all the clips of its
    fold (train, validation and test: the whole dataset under LOSO) to its device."""
    memory = physical_memory() if memory is None else memory
    if memory is None or est.arrays <= memory:
        return
    raise ConfigError(
        f"data.size / data.frames.count: the prepared arrays would take "
        f"{fmt_bytes(est.arrays)} ({est.formula()}), more than this machine's "
        f"{fmt_bytes(memory)} of memory, and every trial holds all the clips of its fold on its "
        "device; lower data.size or data.frames.count"
    )


def free_bytes(root: Path) -> int:
    """Free bytes on the file system holding `root` (its nearest existing parent)."""
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(root: Path, est: Estimate, missing: int) -> None:
    """Refuse a build whose clips still to decode cannot be kept on `root`'s file system (the
    final arrays can take the per-clip results' place as they are copied: `recycle`)."""
    free = free_bytes(root)
    need = est.per_clip_results(missing)
    if free < need + margin(need):
        raise DataError(
            f"{root}: preparing needs about {fmt_bytes(need)} on this file system "
            f"({missing} of {est.clips} clips still to decode; the cache will take "
            f"{fmt_bytes(est.total)}: {est.formula()}), and {fmt_bytes(free)} are free; free "
            "some space (`mer cache clean` removes superseded caches) or set data.cache_dir to "
            "a larger disk"
        )


def recycle(root: Path, est: Estimate) -> bool:
    """Whether the final arrays must replace the per-clip results as they are copied (the
    file system cannot hold both)."""
    return free_bytes(root) < est.total + margin(est.total)


def no_space(exc: OSError, root: Path, est: Estimate) -> DataError | None:
    """A full disk met while writing (ENOSPC, EDQUOT) as a DataError naming the file and the
    figures; None for any other OSError."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = exc.filename or root
    return DataError(
        f"{where}: no space left on the device while writing prepared data (the cache takes "
        f"about {fmt_bytes(est.total)}: {est.formula()}; {fmt_bytes(free_bytes(root))} free "
        "now). Nothing half-written is kept, and the clips finished so far are: free some space "
        "(`mer cache clean`) or set data.cache_dir to a larger disk, then run again to continue"
    )
