"""A prepare that keeps its work (issue 15.6): a killed prepare continues where it stopped and
ends with the same cache as an uninterrupted one; every clip failure of a build is reported
together; `data.on_bad_clip: exclude` lists the clips left out wherever coverage exclusions are
listed; a dry run checks the media without decoding and counts what it could not check. And
`mer prepare` decodes each video once (issue 19.7)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mer.config import DataConfig, FramesConfig, RegionsConfig, SyntheticConfig, from_dict, to_dict
from mer.data import clipstore, frames, preflight
from mer.data.cache import known_coverage, load_samples_only, prepare_data
from mer.data.faces import table as face_table
from mer.datasets import media
from mer.errors import DataError

synthetic = pytest.importorskip("mer.datasets.synthetic")

REPO = Path(__file__).resolve().parents[1]
FILES = ("global.npy", "regions.npy", "frame_numbers.npy", "landmarks.npy", "samples.json")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "casme2"
    synthetic.ensure_dataset(out, "casme2", subjects=2, clips=3, frames=8, size=64)
    return out


def _cfg(tmp: Path, root: Path, cache: str = "cache", **kw) -> DataConfig:
    return DataConfig(
        dataset="synthetic",
        root=str(root),
        synthetic=SyntheticConfig(layout="casme2", subjects=2, clips=3, frames=8, size=64),
        frames=FramesConfig(count=6, select="motion_topk"),
        size=32,
        regions=RegionsConfig(
            **({"landmarks": "annotated", "policy": "au_oracle"} | kw.pop("regions", {}))
        ),  # fmt: skip
        cache_dir=str(tmp / cache),
        **kw,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sample ids of the clips whose pipeline runs (in this process)."""
    seen: list[str] = []
    real = clipstore.process_clip

    def counting(job, s):  # noqa: ANN001, ANN202
        seen.append(job.sample_id)
        return real(job, s)

    monkeypatch.setattr(clipstore, "process_clip", counting)
    return seen


KILLER = """
import json, os, signal, sys
from mer.config import from_dict
from mer.data import cache, clipstore
cfg = from_dict({"data": json.loads(sys.argv[1])}).data
real, calls = clipstore.prepare_clip, [0]
def dying(job, s, file):
    calls[0] += 1
    if calls[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # half-way, as a scheduler's kill -9 would
    return real(job, s, file)
clipstore.prepare_clip = dying
cache.prepare_data(cfg, progress=False, workers=1)
"""


def test_killed_prepare_continues_and_ends_identical(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, shared)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(to_dict(cfg)), "4"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    cache = tmp_path / "cache"
    assert not [p for p in cache.iterdir() if not p.name.startswith(".") and p.name != "synthetic"]
    kept = list((cache / clipstore.FOLDER).rglob("*.npz"))
    assert len(kept) == 3  # the clips finished before the kill

    decoded = _count_decodes(monkeypatch)
    resumed = prepare_data(cfg, progress=False)
    assert len(decoded) == 3 and len(set(decoded)) == 3  # only the missing clips
    assert not [p for p in cache.iterdir() if ".building-" in p.name]
    assert not list((cache / clipstore.FOLDER).rglob("*.npz"))  # copied into the cache, removed

    whole = prepare_data(_cfg(tmp_path, shared, cache="other"), progress=False)
    assert whole.key == resumed.key
    assert resumed.path is not None and whole.path is not None
    for name in FILES:
        assert _sha(resumed.path / name) == _sha(whole.path / name), name
    a = json.loads((resumed.path / "manifest.json").read_text())
    b = json.loads((whole.path / "manifest.json").read_text())
    assert a["files"] == b["files"] and a["files"]["global.npy"]["sha256"]
    volatile = {"created", "build_seconds", "clips_per_second", "seconds_per_clip",
                "manifest_sha256"}  # fmt: skip
    assert a["data"].pop("cache_dir") != b["data"].pop("cache_dir")  # the only other difference
    assert {k: v for k, v in a.items() if k not in volatile} == {
        k: v for k, v in b.items() if k not in volatile
    }


def _break_frame(root: Path, sample_id: str, how: str) -> Path:
    _, subject, clip = sample_id.split("/")
    frame = sorted((root / "CASME2_RAW_selected" / subject / clip).glob("img*.jpg"))[2]
    if how == "truncate":
        frame.write_bytes(frame.read_bytes()[:200])
    elif how == "empty":
        frame.write_bytes(b"")
    else:
        frame.write_bytes(b"not an image at all" * 20)
    return frame


def test_every_failure_reported_together_then_excluded_with_reasons(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from mer.experiment.describe import describe
    from mer.experiment.plan import build_plan, data_key_of

    own = Path(shutil.copytree(shared, tmp_path / "own"))
    cfg = _cfg(tmp_path, own, regions={"policy": "none"})
    samples = load_samples_only(cfg)[0]
    a, b = samples.iloc[1], samples.iloc[4]
    fa, fb = _break_frame(own, a["sample_id"], "truncate"), _break_frame(own, b["sample_id"], "x")

    with pytest.raises(DataError) as err:
        prepare_data(cfg, progress=False)
    msg = str(err.value)
    for row, frame in ((a, fa), (b, fb)):  # both, each with its row and its file
        assert f"{row['sample_id']} ({row['where']}): {frame}: cannot read image" in msg
    assert msg.startswith(f"{a['sample_id']} ({a['where']}): ")
    assert "2 of 6 clip(s) could not be prepared (data.on_bad_clip: error)" in msg
    assert "The 4 clip(s) prepared are kept" in msg

    decoded = _count_decodes(monkeypatch)
    ex_cfg = _cfg(tmp_path, own, regions={"policy": "none"}, on_bad_clip="exclude")
    data = prepare_data(ex_cfg, progress=False)
    assert sorted(decoded) == sorted([a["sample_id"], b["sample_id"]])  # the 4 good ones kept
    assert len(data.samples) == 4 and data.global_clips.shape[0] == 4
    assert [e["sample_id"] for e in data.excluded] == [a["sample_id"], b["sample_id"]]
    first = data.excluded[0]
    assert first["reason"] == "bad_clip" and first["where"] == a["where"]
    assert first["error"].startswith(f"{fa}: cannot read image")
    manifest = json.loads((data.path / "manifest.json").read_text())
    assert manifest["excluded"] == data.excluded and manifest["counts"]["bad_clips"] == 2

    # plan.json, the dry run (known from the last prepare) and the report list them
    exp = from_dict({"data": json.loads(json.dumps(manifest["data"])), "model": {"num_classes": 3}})
    plan = build_plan(exp, lambda d: (data.samples, data.class_names),
                      faces_for=lambda d: data.faces)  # fmt: skip
    key = data_key_of(ex_cfg)
    assert plan.to_json()["faces"][key]["excluded"] == data.excluded
    assert known_coverage(ex_cfg)["excluded"] == data.excluded
    dry = describe(build_plan(exp, lambda d: load_samples_only(d), faces_for=known_coverage))
    assert "Excluded as unusable (data.on_bad_clip: exclude): 2 clip(s)" in dry
    assert f"excluded: {a['sample_id']} ({a['where']}): {fa}: cannot read image" in dry
    assert "Face coverage" not in dry  # this config looks for no faces
    lines = face_table.report_lines(json.loads(json.dumps(plan.to_json())))
    assert lines[0].startswith(f"data {key} (full): Excluded as unusable")
    assert any(b["sample_id"] in line for line in lines)

    # the same cache under `error`: refused, naming the clips it lacks
    with pytest.raises(DataError, match=r"2 clip\(s\) of this data could not be prepared"):
        prepare_data(cfg, progress=False)


def test_dry_run_checks_media_without_decoding(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    own = Path(shutil.copytree(shared, tmp_path / "own"))
    cfg = _cfg(tmp_path, own, regions={"policy": "none"})
    samples = load_samples_only(cfg)[0]
    a, b = samples.iloc[0], samples.iloc[3]
    fa, fb = _break_frame(own, a["sample_id"], "empty"), _break_frame(own, b["sample_id"], "x")

    def boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the dry run decoded a frame")

    monkeypatch.setattr(media.ClipSource, "_decode", boom)
    scan = preflight.scan_media(cfg)
    assert (scan.clips, scan.checked, scan.unchecked) == (6, 6, 0)
    assert scan.problems == [
        f"{a['sample_id']} ({a['where']}): {fa}: empty file",
        f"{b['sample_id']} ({b['where']}): {fb}: cannot read the image header "
        f"(cannot identify image file '{fb}')",
    ]
    text = "\n".join(scan.lines())
    assert "6 of 6 clips checked" in text and "2 problem(s); 0 clip(s) could not be checked" in text

    # media not on this machine: every clip counted as not checked, and why
    xlsx = own / "CASME2-coding-20140508.xlsx"
    away = DataConfig(
        dataset="casme2",
        annotations=str(xlsx),
        root=str(tmp_path / "nowhere"),
        regions=RegionsConfig(policy="none"),
        cache_dir=str(tmp_path / "c"),
    )
    scan = preflight.scan_media(away)
    assert (scan.clips, scan.checked, scan.unchecked) == (6, 0, 6)
    assert "6 clip(s) could not be checked (the media could not be listed)" in scan.lines()[0]
    assert str(tmp_path / "nowhere") in scan.problems[0]


def test_prepare_decodes_each_video_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """motion_topk reads every frame of a video once, in one pass, and keeps the chosen ones:
    the same frames as grey pass + decoding the chosen frames again (the previous way)."""
    out = tmp_path / "videos"
    synthetic.ensure_dataset(out, "videos", subjects=2, clips=3, frames=20, size=48)
    passes: dict[str, int] = {}
    frames_out: dict[str, int] = {}
    real = media.ClipSource._decode

    def counting(self, positions):  # noqa: ANN001, ANN202
        passes[str(self.path)] = passes.get(str(self.path), 0) + 1
        for img in real(self, positions):
            frames_out[str(self.path)] = frames_out.get(str(self.path), 0) + 1
            yield img

    monkeypatch.setattr(media.ClipSource, "_decode", counting)
    for backend in ("decord", "av"):
        passes.clear()
        frames_out.clear()
        cfg = DataConfig(
            dataset="synthetic", root=str(out), labels="folder3",
            synthetic=SyntheticConfig(layout="videos", subjects=2, clips=3, frames=20, size=48),
            frames=FramesConfig(count=6, select="motion_topk"), size=24,
            regions=RegionsConfig(policy="fixed", landmarks="none"), video_backend=backend,
            cache_dir=str(tmp_path / f"cache-{backend}"),
        )  # fmt: skip
        data = prepare_data(cfg, progress=False)
        paths = list(data.samples["path"])
        assert passes == {p: 1 for p in paths}, backend  # one decoding pass per video
        assert frames_out == {p: 20 for p in paths}  # each frame once
        monkeypatch.setattr(media.ClipSource, "_decode", real)
        numbers = np.load(data.path / "frame_numbers.npy")
        for i, path in enumerate(paths):  # the previous two-pass way gives the same frames
            src = media.open_clip(path, backend=backend)
            idx = frames.select_frames(src.read_grey(), 6, "motion_topk")
            np.testing.assert_array_equal(numbers[i], np.asarray(src.numbers)[idx])
            from mer.data import regions

            np.testing.assert_array_equal(data.global_clips[i],
                                          regions.global_frames(src.read(idx), 24))  # fmt: skip
        monkeypatch.setattr(media.ClipSource, "_decode", counting)


@pytest.mark.parametrize("seed", range(4))
def test_motion_stream_equals_select_frames(seed: int) -> None:
    """The one-pass selection gives exactly select_frames' positions, blank frames, ties and
    short clips included."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, count = int(rng.integers(1, 14)), int(rng.integers(1, 10))
        clip = (rng.integers(0, 3, size=(n, 6, 5, 3)) * int(rng.integers(1, 90))).astype(np.uint8)
        kind = int(rng.integers(0, 4))
        for i in range(n):
            if kind == 2 or (kind == 1 and rng.random() < 0.3):
                clip[i] = int(rng.integers(0, 255))  # blank (constant) frames
        if kind == 3:
            clip[:] = clip[0]  # every score ties
        want = frames.select_frames(clip, count, "motion_topk")
        stream = frames.MotionStream(n, count)
        for f in clip:
            stream.add(f)
        idx, chosen, blank = stream.result()
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(chosen, clip[want])
        assert blank == int(frames.blank_mask(clip).sum())


def test_workers_keep_results_and_resume(tmp_path: Path, shared: Path) -> None:
    """Two worker processes store each clip as it finishes; a stored result is not redone."""
    cfg = _cfg(tmp_path, shared)
    store = clipstore.ClipStore(clipstore.config_folder(cfg), cfg)
    data = prepare_data(cfg, progress=False, workers=2)
    assert len(data.samples) == 6 and not list(store.folder.glob("*.npz"))
    assert os.path.isdir(tmp_path / "cache" / data.key)


def test_a_result_removed_before_assembly_is_prepared_again(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds of one config for different sources share the unchanged clips' results; the
    first to finish removes them: the other prepares those clips again instead of failing."""
    from mer.data import assemble

    real = assemble.prepare_clips

    def then_lose_one(data_cfg, samples, store, keys, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        failures = real(data_cfg, samples, store, keys, *args, **kwargs)
        store.file(keys[2]).unlink()
        return failures

    monkeypatch.setattr(assemble, "prepare_clips", then_lose_one)
    data = prepare_data(_cfg(tmp_path, shared), progress=False)
    monkeypatch.undo()
    whole = prepare_data(_cfg(tmp_path, shared, cache="other"), progress=False)
    for name in FILES:
        assert _sha(data.path / name) == _sha(whole.path / name), name


def test_dry_run_lines_size_and_one_media_check_per_source(tmp_path: Path, shared: Path) -> None:
    from mer.data import budget
    from mer.experiment.plan import data_key_of

    data = to_dict(_cfg(tmp_path, shared))
    cfg = from_dict(
        {"data": data, "ablations": {"full": {}, "none": {"data.regions.policy": "none"}}}
    )
    lines = preflight.dry_run_lines(cfg)
    full = budget.Estimate.of(_cfg(tmp_path, shared), 6)
    size = budget.fmt_bytes(full.total)
    assert lines[0].startswith(f"Prepared data {data_key_of(cfg.data)}: about {size} (6 clips x 6")
    assert "x 1 branch(es)" in lines[1] and lines[2].startswith(f"Cache {tmp_path / 'cache'}: ")
    (media_line,) = [line for line in lines if "Media check without decoding" in line]
    assert media_line.count(", ") >= 1 and "6 of 6 clips checked" in media_line  # both configs
