"""Disk and memory limits of prepared data (issues 17.7, 17.8): the bytes are estimated before
building and a file system without them is refused with the figure; a full disk met anyway ends
with a message naming the file and the figures, nothing half-written left and the clips done so
far kept (never SIGBUS); sizes that cannot fit in memory are refused with the keys named."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

from mer.config import DataConfig, FramesConfig, RegionsConfig, SyntheticConfig, from_dict
from mer.data import budget, clipstore, integrity
from mer.data.cache import prepare_data
from mer.errors import ConfigError, DataError
from mer.util.files import write_text_atomic

synthetic = pytest.importorskip("mer.datasets.synthetic")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("limits") / "casme2"
    synthetic.ensure_dataset(out, "casme2", subjects=2, clips=3, frames=8, size=64)
    return out


def _cfg(cache: Path, root: Path, size: int = 32, count: int = 6) -> DataConfig:
    return DataConfig(
        dataset="synthetic",
        root=str(root),
        synthetic=SyntheticConfig(layout="casme2", subjects=2, clips=3, frames=8, size=64),
        frames=FramesConfig(count=count),
        size=size,
        regions=RegionsConfig(landmarks="annotated", policy="au_oracle"),
        cache_dir=str(cache),
    )


def _visible(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name not in (".locks", ".usage"))


# ------------------------------------------------------------------------------ estimate
def test_too_little_free_space_is_refused_before_decoding(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        prepare_data(_cfg(cache, shared), progress=False)
    est = budget.Estimate.of(_cfg(cache, shared), 6)
    msg = str(err.value)
    assert msg.startswith(f"{cache}: preparing needs about {budget.fmt_bytes(est.total)}")
    assert "6 of 6 clips still to decode" in msg and "and 50.0 kB are free" in msg
    assert "6 clips x 6 frames (data.frames.count) x 32^2 px (data.size)" in msg
    assert _visible(cache) == []  # nothing decoded, nothing half-written


def _unshare_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt && echo ok"],
        capture_output=True, text=True,
    )  # fmt: skip
    return probe.stdout.strip() == "ok"


def _prepare_on_tmpfs(tmp_path: Path, shared: Path, size_kb: int) -> subprocess.CompletedProcess:
    """`mer prepare` with data.cache_dir on a tmpfs of `size_kb` (a private mount namespace)."""
    cache = tmp_path / "tmpfs"
    cache.mkdir()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        textwrap.dedent(f"""
        name: full_disk
        data:
          dataset: synthetic
          root: {shared}
          synthetic: {{layout: casme2, subjects: 2, clips: 3, frames: 8, size: 64}}
          frames: {{count: 8}}
          size: 96
          regions: {{landmarks: annotated, policy: au_oracle}}
          cache_dir: {cache}
        """)
    )
    command = (
        f"mount -t tmpfs -o size={size_kb}k tmpfs {cache} && "
        f"exec {sys.executable} -m mer prepare {sweep} --quiet --workers 1; "
    )
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", command + f"echo; ls -a {cache}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.skipif(not _unshare_tmpfs(), reason="cannot mount a tmpfs here (unshare -Urm)")
def test_full_tmpfs_is_refused_with_the_figure_not_sigbus(tmp_path: Path, shared: Path) -> None:
    proc = _prepare_on_tmpfs(tmp_path, shared, size_kb=1024)
    assert proc.returncode == 2, proc.stderr[-2000:]  # a message, not a signal
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path / 'tmpfs'}: preparing needs about 2.7 MB")
    assert "MB on this file system" in line and "are free" in line


@pytest.mark.skipif(not _unshare_tmpfs(), reason="cannot mount a tmpfs here (unshare -Urm)")
def test_tight_tmpfs_builds_with_the_arrays_replacing_per_clip_results(
    tmp_path: Path, shared: Path
) -> None:
    """Room for the per-clip results and not for a second copy: the cache takes their place."""
    proc = _prepare_on_tmpfs(tmp_path, shared, size_kb=4608)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "little free space" in proc.stderr and "6 clips" in proc.stdout


class _FullDisk:
    """A file whose writes fail with ENOSPC once `room` bytes are written (as write(2) does on
    a full file system: the OSError names no file)."""

    def __init__(self, fh, room: list[int]):  # noqa: ANN001
        self._fh, self._room = fh, room

    def write(self, data) -> int:  # noqa: ANN001
        n = len(memoryview(data).cast("B"))
        if n > self._room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room[0] -= n
        return self._fh.write(data)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._fh, name)


def test_disk_full_half_way_names_the_file_and_keeps_the_clips(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cfg = _cfg(cache, shared)
    room = [3 * 6 * 32 * 32 * 3 + 400]  # the headers and three clips, then full

    def full_open(path, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return _FullDisk(open(path, mode, *args, **kwargs), room)

    monkeypatch.setattr(integrity, "open", full_open, raising=False)
    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False)
    msg = str(err.value)
    est = budget.Estimate.of(cfg, 6)
    assert msg.split(": ")[0].endswith(("/global.npy", "/regions.npy")) and f"{cache}/." in msg
    assert "no space left on the device while writing prepared data" in msg
    assert f"the cache takes about {budget.fmt_bytes(est.total)}" in msg
    assert _visible(cache) == [clipstore.FOLDER]  # no cache, no half-written build folder
    assert len(list((cache / clipstore.FOLDER).rglob("*.npz"))) == 6  # every clip kept

    monkeypatch.undo()
    decoded: list[str] = []
    real = clipstore.process_clip
    monkeypatch.setattr(clipstore, "process_clip",
                        lambda job, s: decoded.append(job.sample_id) or real(job, s))  # fmt: skip
    data = prepare_data(cfg, progress=False)
    assert decoded == [] and len(data.samples) == 6


def test_atomic_write_on_a_full_disk_names_the_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self, data, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        self.touch()  # the file exists, half-written
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    monkeypatch.setattr(Path, "write_text", full)
    target = tmp_path / "predictions.csv"
    with pytest.raises(OSError) as err:
        write_text_atomic(target, "a,b\n")
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert str(target) in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no predictions.csv.tmp<pid> left behind


# ------------------------------------------------------------------------------- memory
def test_arrays_larger_than_memory_are_refused_with_the_keys(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cfg = _cfg(cache, shared, size=64, count=8)
    monkeypatch.setattr(budget, "physical_memory", lambda: 1_000_000)
    with pytest.raises(ConfigError) as err:
        prepare_data(cfg, progress=False)
    msg = str(err.value)
    assert msg.startswith("data.size / data.frames.count: the prepared arrays would take 1.2 MB")
    assert "(6 clips x 8 frames (data.frames.count) x 64^2 px (data.size) x 3 channels x 2 " in msg
    assert "more than this machine's 1.0 MB of memory" in msg
    assert _visible(cache) == []  # refused before decoding


def test_sizes_that_cannot_fit_are_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"data": {"size": 4096, "frames": {"count": 64}}})
    msg = str(err.value)
    assert msg.startswith("data.size 4096 and data.frames.count 64: one clip's prepared arrays")
    assert "6.00 GiB" in msg and "above the limit of 1.00 GiB per clip" in msg
    from_dict({"data": {"size": 4096, "frames": {"count": 8}, "regions": {"policy": "none"}}})


@pytest.mark.parametrize(
    ("synthetic_cfg", "message"),
    [
        ({"subjects": 10**6}, r"data.synthetic.subjects: expected a value in \[1, 1000\]"),
        ({"subjects": 1000, "clips": 100}, r"= 100000 clips, above the limit of 20000"),
        ({"frames": 1000, "size": 1024}, r"3.91 GiB of frames, above the limit of 1.00 GiB"),
    ],
)
def test_synthetic_sizes_are_bounded(synthetic_cfg: dict, message: str) -> None:
    """A dry run generates synthetic data: 10^6 subjects must fail in the config, not fill
    memory and disk."""
    with pytest.raises(ConfigError, match=message):
        from_dict({"data": {"dataset": "synthetic", "synthetic": synthetic_cfg}})
