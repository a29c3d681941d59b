"""Cache integrity (issue 17.6): the manifest records each file's shape, dtype, size and digests;
opening a cache checks them (a sample of clips by default, every byte with --verify), and a
damaged cache says "delete it and re-prepare" with its path, never a traceback or the wrong
arrays. And `mer cache list|clean` (issue 17.10)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer.cli import main as mer_main
from mer.config import DataConfig, FramesConfig, RegionsConfig, SyntheticConfig
from mer.data import integrity, listing
from mer.data.cache import load_prepared, prepare_data
from mer.errors import DataError

synthetic = pytest.importorskip("mer.datasets.synthetic")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "casme2"
    synthetic.ensure_dataset(out, "casme2", subjects=2, clips=3, frames=8, size=64)
    return out


def _cfg(tmp: Path, root: Path, **kw) -> DataConfig:
    return DataConfig(
        dataset="synthetic",
        root=str(root),
        synthetic=SyntheticConfig(layout="casme2", subjects=2, clips=3, frames=8, size=64),
        frames=FramesConfig(count=6),
        size=kw.pop("size", 32),
        regions=RegionsConfig(landmarks="annotated", policy="au_oracle"),
        cache_dir=str(tmp / "cache"),
        **kw,
    )


def _damaged(err: pytest.ExceptionInfo, path: Path, what: str) -> None:
    msg = str(err.value)
    assert msg.startswith(f"{path}") and what in msg, msg
    assert f"the prepared data in {path.parent} is damaged: delete it and re-prepare" in msg


def test_manifest_records_every_file(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(_cfg(tmp_path, shared), progress=False)
    manifest = json.loads((data.path / "manifest.json").read_text())
    files = manifest["files"]
    assert set(files) == {"global.npy", "regions.npy", "frame_numbers.npy", "landmarks.npy",
                          "samples.json"}  # fmt: skip
    g = files["global.npy"]
    assert g["shape"] == [6, 6, 32, 32, 3] and g["dtype"] == "|u1"
    assert g["bytes"] == (data.path / "global.npy").stat().st_size
    assert len(g["rows"]) == 6 and all(len(r) == 16 for r in g["rows"])
    assert files["landmarks.npy"]["dtype"] == "<f4" and files["landmarks.npy"]["shape"][-1] == 2
    assert files["samples.json"]["bytes"] == (data.path / "samples.json").stat().st_size
    assert manifest["manifest_sha256"] == integrity.manifest_digest(manifest)


def test_deleted_regions_is_an_error_not_whole_frames(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, shared)
    data = prepare_data(cfg, progress=False)
    (data.path / "regions.npy").unlink()
    for open_it in (lambda: prepare_data(cfg, progress=False), lambda: load_prepared(data.path)):
        with pytest.raises(DataError) as err:
            open_it()
        _damaged(err, data.path / "regions.npy", "missing")


def test_deleted_regions_of_a_cache_without_records(tmp_path: Path, shared: Path) -> None:
    """Caches built before the records: their `arrays` still say branch B exists."""
    data = prepare_data(_cfg(tmp_path, shared), progress=False)
    manifest = json.loads((data.path / "manifest.json").read_text())
    for key in ("files", "manifest_sha256"):
        manifest.pop(key)
    (data.path / "manifest.json").write_text(json.dumps(manifest))
    assert load_prepared(data.path).region_clips is not None  # loads as before
    (data.path / "regions.npy").unlink()
    with pytest.raises(DataError) as err:
        load_prepared(data.path)
    _damaged(err, data.path / "regions.npy", "missing")


def test_truncated_array(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, shared)
    data = prepare_data(cfg, progress=False)
    path = data.path / "global.npy"
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 1000)
    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False)
    _damaged(err, path, f"truncated ({size - 1000} bytes, expected {size})")


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_flipped_bytes(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, shared)
    data = prepare_data(cfg, progress=False)
    path = data.path / "global.npy"
    _, _, header = integrity.read_header(path, data.path)
    row = 6 * 32 * 32 * 3
    assert integrity.sample_rows(6) == [0, 3, 5]  # checked by default
    _flip(path, header + 1 * row + 100)  # clip 1: found by --verify only
    assert len(prepare_data(cfg, progress=False).samples) == 6
    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False, verify=True)
    _damaged(err, path, "content differs from what was written (sha256)")
    _flip(path, header + 1 * row + 100)  # back
    _flip(path, header + 3 * row + 7)  # a sampled clip: found on every open
    with pytest.raises(DataError) as err:
        load_prepared(data.path)
    _damaged(err, path, "clip 3 differs from what was written")
    _flip(path, header + 3 * row + 7)
    _flip(data.path / "frame_numbers.npy", 200)  # small files: always every byte
    with pytest.raises(DataError) as err:
        load_prepared(data.path)
    _damaged(err, data.path / "frame_numbers.npy", "content differs")


def test_edited_class_names_and_table(tmp_path: Path, shared: Path) -> None:
    cfg = _cfg(tmp_path, shared)
    data = prepare_data(cfg, progress=False)
    manifest_file = data.path / "manifest.json"
    original = manifest_file.read_text()
    manifest = json.loads(original)
    manifest["class_names"] = ["negative", "surprise", "positive"]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False)
    _damaged(err, manifest_file, "edited since it was written")
    # an edit that also rewrites the manifest's digest still disagrees with the label scheme
    manifest["manifest_sha256"] = integrity.manifest_digest(manifest)
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False)
    _damaged(err, manifest_file, "class names ['negative', 'surprise', 'positive'], but the label")
    manifest_file.write_text(original)
    table = data.path / "samples.json"
    body = json.loads(table.read_text())
    body["data"]["label"][0] = (body["data"]["label"][0] + 1) % 3  # a relabelled clip
    table.write_text(json.dumps(body))
    with pytest.raises(DataError) as err:
        load_prepared(data.path)
    _damaged(err, table, "differs")


def test_cache_list_and_clean(tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture) -> None:
    own = Path(shutil.copytree(shared, tmp_path / "own"))
    cfg = _cfg(tmp_path, own)
    old = prepare_data(cfg, progress=False, used_by="sweep demo (/results/a)")
    other = prepare_data(_cfg(tmp_path, own, size=24), progress=False)
    frame = next(iter(sorted(Path(old.samples["path"][0]).iterdir())))
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    new = prepare_data(cfg, progress=False, used_by="sweep demo (/results/b)")
    assert new.key != old.key
    root = tmp_path / "cache"
    stale_build = root / f".{new.key}.building-dead"
    stale_build.mkdir()
    (root / "0123456789abcdef").mkdir()  # a folder without manifest
    (root / "mine").mkdir()  # not a cache folder: never listed nor removed

    entries = {e.key: e for e in listing.list_caches(root)}
    assert entries[old.key].stale.startswith(f"superseded by {new.key}")
    assert entries[new.key].stale == "" and entries[other.key].stale == ""
    assert entries[new.key].users == {"sweep demo (/results/b)": entries[new.key].last_used}
    assert entries[old.key].dataset == "synthetic (casme2)" and entries[old.key].clips == 6
    assert entries[new.key].bytes == sum(p.stat().st_size for p in new.path.iterdir())

    assert mer_main(["cache", "list", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{new.key}  synthetic (casme2)" in out and "used by: sweep demo (/results/b)" in out

    assert mer_main(["cache", "clean", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old.path}" in out and "removed 3 entries" in out
    left = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert left == sorted([new.key, other.key, "mine"])
    assert not stale_build.exists()
    assert not (root / ".usage" / f"{old.key}.json").exists()
    prepare_data(cfg, progress=False)  # the kept cache still opens, nothing rebuilt

    removed, _ = listing.clean(root, older_than=0.0, dry_run=True)
    assert {e.key for e in removed} == {new.key, other.key}
    assert (new.path / "manifest.json").is_file()  # dry run: nothing removed
    removed, skipped = listing.clean(root, keys=[other.key, "nope"])
    assert [e.key for e in removed] == [other.key] and skipped[0][1] == "no such cache"


def test_a_cache_being_built_is_not_cleaned(tmp_path: Path, shared: Path) -> None:
    data = prepare_data(_cfg(tmp_path, shared), progress=False)
    root = tmp_path / "cache"
    from mer.data.locking import file_lock, lock_path

    with file_lock(lock_path(root, data.key)) as held:
        assert held
        removed, skipped = listing.clean(root, keys=[data.key])
    assert removed == [] and skipped[0][1] == "in use: a prepare holds its lock"
    assert np.load(data.path / "frame_numbers.npy").shape == (6, 6)
