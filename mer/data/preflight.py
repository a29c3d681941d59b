"""What a dry run can check of the data without decoding (issues 15.6, 17.7, 17.8): each clip's
media (the files exist and are not empty, every frame image's header reads, a video's container
opens and has a video stream), and the size of the prepared data against the cache's free disk
and this machine's memory. It says how many clips it could not check and why (a media root that
is not on this machine, a sample table that cannot be read with its media); decoding itself is
checked by `mer prepare`, which reports every clip that fails, together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mer.config import DataConfig, config_hash
from mer.data import budget
from mer.data.cache import distinct_data_configs
from mer.data.keys import key_config
from mer.data.sources import load_samples_only, read_samples
from mer.datasets.media import list_frames
from mer.errors import DataError, MerError

log = logging.getLogger(__name__)

SHOWN = 10  # problems listed per data config


@dataclass
class MediaScan:
    clips: int
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    unchecked_why: str = ""

    @property
    def unchecked(self) -> int:
        return self.clips - self.checked

    def lines(self) -> list[str]:
        out = [
            f"Media check without decoding: {self.checked} of {self.clips} clips checked (files "
            f"exist and are not empty, frame headers read, video containers open): "
            f"{len(self.problems)} problem(s); {self.unchecked} clip(s) could not be checked"
            + (f" ({self.unchecked_why})" if self.unchecked and self.unchecked_why else "")
            + ". Decoding is checked by `mer prepare`, which lists every clip that fails."
        ]
        out += [f"  - {p}" for p in self.problems[:SHOWN]]
        if len(self.problems) > SHOWN:
            out.append(f"  (+{len(self.problems) - SHOWN} more)")
        return out


def _check_image(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return f"{path}: empty file"
        with Image.open(path) as img:  # reads the header only
            img.size  # noqa: B018 - the header's size must parse
    except (OSError, ValueError, SyntaxError) as exc:
        return f"{path}: cannot read the image header ({exc})"
    return None


def _check_video(path: Path) -> str | None:
    import av  # lazy: PyAV takes ~0.1 s to import; only video clips need it

    if path.stat().st_size == 0:
        return f"{path}: empty file"
    try:
        with av.open(str(path)) as container:  # demuxer only: nothing is decoded
            if not container.streams.video:
                return f"{path}: has no video stream"
    except Exception as exc:  # av.error.FFmpegError, EOFError, OSError ...
        return f"{path}: the container does not open ({str(exc).splitlines()[0][:200]})"
    return None


def check_clip(path: str | Path) -> list[str]:
    """What is wrong with one clip's media, found without decoding (empty: nothing)."""
    path = Path(path)
    if path.is_dir():
        try:
            frames = list_frames(path)
        except DataError as exc:
            return [str(exc)]
        return [p for _, f in frames if (p := _check_image(f)) is not None]
    if not path.is_file():
        return [f"{path}: not found"]
    found = _check_video(path)
    return [] if found is None else [found]


def scan_media(data_cfg: DataConfig) -> MediaScan:
    """Check every clip's media without decoding (module doc)."""
    try:
        samples, _, _ = read_samples(data_cfg, check_media=True)
    except MerError as exc:  # a root not here, media missing: the rows are still countable
        try:
            n = len(load_samples_only(data_cfg)[0])
        except MerError:
            n = 0
        first = str(exc).splitlines()[0]
        return MediaScan(clips=n, problems=[first], unchecked_why="the media could not be listed")
    scan = MediaScan(clips=len(samples))
    checked: dict[str, list[str]] = {}  # recordings shared by several clips: checked once
    for row in samples.to_dict("records"):
        path = str(row["path"])
        if path not in checked:
            checked[path] = check_clip(path)
        where = f" ({row['where']})" if row.get("where") else ""
        scan.problems += [f"{row['sample_id']}{where}: {p}" for p in checked[path]]
        scan.checked += 1
    return scan


def size_lines(estimates: list[tuple[str, DataConfig, int]]) -> list[str]:
    """Each data config's prepared size (data key, config, clips), the free space of the cache
    dirs against their sum, and the configs whose arrays exceed this machine's memory."""
    out: list[str] = []
    per_root: dict[Path, int] = {}
    memory = budget.physical_memory()
    for key, data_cfg, clips in estimates:
        est = budget.Estimate.of(data_cfg, clips)
        root = Path(data_cfg.cache_dir).expanduser()
        per_root[root] = per_root.get(root, 0) + est.total
        out.append(f"Prepared data {key}: about {budget.fmt_bytes(est.total)} ({est.formula()})")
        if memory is not None and est.arrays > memory:
            out.append(
                f"WARNING: data {key}: the arrays ({budget.fmt_bytes(est.arrays)}) exceed this "
                f"machine's memory ({budget.fmt_bytes(memory)}); a trial holds them all on its "
                "device: lower data.size or data.frames.count (`mer prepare` here refuses)"
            )
    for root, total in per_root.items():
        free = budget.free_bytes(root)
        out.append(f"Cache {root}: {budget.fmt_bytes(free)} free for {budget.fmt_bytes(total)}")
        if free < total + budget.margin(total):
            out.append(
                f"WARNING: {root} has less free space than the prepared data needs; `mer "
                "prepare` here would refuse"
            )
    return out


def source_key(data_cfg: DataConfig) -> str:
    """Data configs with the same key read the same annotation and media files (they may still
    select frames or crop regions differently): their rows and media are read and checked once."""
    return config_hash(
        [data_cfg.dataset, data_cfg.root, data_cfg.annotations, data_cfg.sources,
         data_cfg.synthetic if data_cfg.is_synthetic else None, data_cfg.labels,
         data_cfg.cache_dir if data_cfg.is_synthetic else None]
    )  # fmt: skip


def dry_run_lines(cfg: Any) -> list[str]:
    """For a sweep's dry run: the size of each distinct data config's prepared data, and the
    media check of each distinct source (data configs reading the same files share one)."""
    scans: dict[str, tuple[MediaScan, list[str]]] = {}
    estimates: list[tuple[str, DataConfig, int]] = []
    for data_cfg in distinct_data_configs(cfg):
        key = config_hash(key_config(data_cfg), 12)
        source = source_key(data_cfg)
        if source not in scans:
            scans[source] = (scan_media(data_cfg), [])
        scan, keys = scans[source]
        keys.append(key)
        estimates.append((key, data_cfg, scan.clips))
    out = size_lines(estimates)
    for scan, keys in scans.values():
        lines = scan.lines()
        out.append(f"data {', '.join(keys)}: {lines[0]}")
        out += lines[1:]
    return out
