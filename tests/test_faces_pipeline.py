"""The face pipeline on synthetic layouts (ground-truth landmarks beside every clip): coverage
policy, blank frames, per-clip boxes, the face crop of branch A, the landmark cache, config keys,
and the plan/report lines. Real video: tests/test_faces_real.py."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mer.config import (
    DataConfig,
    FacesConfig,
    FramesConfig,
    RegionsConfig,
    SyntheticConfig,
    config_hash,
)
from mer.data import regions
from mer.data.cache import key_config, known_coverage, load_samples_only, prepare_data
from mer.data.faces import table as face_table
from mer.datasets import media
from mer.errors import ConfigError, DataError

synthetic = pytest.importorskip("mer.datasets.synthetic")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CASME II RAW-like synthetic data: the head in its surroundings (framing scene)."""
    out = tmp_path_factory.mktemp("scene") / "casme2"
    synthetic.ensure_dataset(out, "casme2", subjects=2, clips=3, frames=8, size=96)
    return out


def _own(scene: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(scene, tmp / "own"))


def _cfg(tmp: Path, root: Path, *, regions_kw=None, faces_kw=None, **kw) -> DataConfig:
    return DataConfig(
        dataset="synthetic",
        root=str(root),
        synthetic=SyntheticConfig(layout="casme2", subjects=2, clips=3, frames=8, size=96),
        frames=FramesConfig(**({"count": 6} | kw.pop("frames", {}))),
        size=kw.pop("size", 32),
        regions=RegionsConfig(**({"landmarks": "annotated", "policy": "all"} | (regions_kw or {}))),
        faces=FacesConfig(**(faces_kw or {})),
        cache_dir=str(tmp / "cache"),
        **kw,
    )


def _numbers(data) -> np.ndarray:
    return np.load(data.path / "frame_numbers.npy")


def _gt(path: str, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clip = media.open_clip(path)
    pos = clip.positions_of(numbers)
    return clip.read(pos), np.load(synthetic.landmark_path(Path(path)))[pos]


def _folder(root: Path, sample_id: str) -> Path:
    _, subject, clip = sample_id.split("/")
    return root / "CASME2_RAW_selected" / subject / clip


def _hide_face(root: Path, sample_id: str, frames: list[int]) -> Path:
    """The clip's ground truth says: no face in these frame positions."""
    folder = _folder(root, sample_id)
    lm = synthetic.landmark_path(folder)
    points = np.load(lm)
    points[frames] = np.nan
    np.save(lm, points)
    return folder


# ------------------------------------------------------------------------------------ coverage
def test_low_coverage_clip_follows_on_low_coverage(
    tmp_path: Path, scene: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mer.config import from_dict
    from mer.sweep.plan import build_plan, data_key_of, describe

    own = _own(scene, tmp_path)
    first = load_samples_only(_cfg(tmp_path, own))[0]
    target = first.iloc[1]
    # uniform picks positions 0 1 3 4 6 7 of 8: the face only in 3 (1 of 6, longest gap 3)
    _hide_face(own, target["sample_id"], [0, 1, 2, 4, 5, 6, 7])
    n = len(first)
    uniform = {"select": "uniform", "count": 6}

    def cfg_u(tmp: Path, root: Path, **kw) -> DataConfig:
        return _cfg(tmp, root, frames=uniform, **kw)

    with pytest.raises(DataError) as err:
        prepare_data(cfg_u(tmp_path, own), progress=False)  # default: error
    msg = str(err.value)
    assert msg.startswith(f"1 of {n} clips show a face in fewer than 50% of their 6 selected")
    assert f"{target['sample_id']} ({target['where']}): face in 1/6 frames (17%" in msg
    assert "on_low_coverage: exclude" in msg and "keep" in msg

    with caplog.at_level(logging.WARNING):
        kept = prepare_data(cfg_u(tmp_path, own, faces_kw={"on_low_coverage": "keep"}),
                            progress=False)  # fmt: skip
    assert len(kept.samples) == n and kept.excluded == []
    row = kept.samples[kept.samples["sample_id"] == target["sample_id"]].iloc[0]
    assert (row["face_frames"], row["face_coverage"], row["filled_run"]) == (1, 1 / 6, 3)
    assert (kept.samples.drop(index=row.name)["face_coverage"] == 1.0).all()
    assert "on_low_coverage keep: 1 of 6 clips show a face in fewer than 50%" in caplog.text

    cfg = cfg_u(tmp_path, own, faces_kw={"on_low_coverage": "exclude"})
    data = prepare_data(cfg, progress=False)
    assert len(data.samples) == n - 1 and target["sample_id"] not in set(data.samples["sample_id"])
    assert data.global_clips.shape[0] == n - 1 and data.region_clips.shape[0] == n - 1
    (ex,) = data.excluded
    assert ex["sample_id"] == target["sample_id"] and ex["where"] == target["where"]
    assert (ex["face_frames"], ex["face_coverage"], ex["filled_run"]) == (1, round(1 / 6, 4), 3)
    manifest = json.loads((data.path / "manifest.json").read_text())
    assert manifest["counts"]["excluded"] == 1 and manifest["excluded"] == [ex]
    assert manifest["faces"]["excluded"] == [ex] and manifest["faces"]["clips"] == n - 1

    # plan.json, the dry run (known from the last prepare) and the report list it
    exp = from_dict({"data": json.loads(json.dumps(manifest["data"])), "model": {"num_classes": 3}})
    plan = build_plan(exp, lambda d: (data.samples, data.class_names),
                      faces_for=lambda d: data.faces)  # fmt: skip
    key = data_key_of(cfg)
    assert plan.to_json()["faces"][key]["excluded"] == [ex]
    known = known_coverage(cfg)
    assert known is not None and known["excluded"] == [ex] and known["cache"] == str(data.path)
    dry = build_plan(exp, lambda d: load_samples_only(d), faces_for=known_coverage)
    text = describe(dry)
    assert "Excluded for low face coverage: 1 clip(s)" in text
    assert f"excluded: {target['sample_id']} ({target['where']}): face in 1/6 frames" in text
    lines = face_table.report_lines(json.loads(json.dumps(plan.to_json())))
    assert lines[0].startswith(f"data {key} (full): Face coverage: {n - 1} of {n - 1} clips")
    assert any(target["sample_id"] in line for line in lines)


def test_no_face_at_all_is_excluded_or_follows_no_face(tmp_path: Path, scene: Path) -> None:
    own = _own(scene, tmp_path)
    target = load_samples_only(_cfg(tmp_path, own))[0].iloc[0]
    _hide_face(own, target["sample_id"], list(range(8)))
    with pytest.raises(DataError, match=r"no face found in any of the 6 selected frames"):
        prepare_data(_cfg(tmp_path, own), progress=False)
    data = prepare_data(_cfg(tmp_path, own, faces_kw={"on_low_coverage": "exclude"}),
                        progress=False)  # fmt: skip
    assert [e["sample_id"] for e in data.excluded] == [target["sample_id"]]
    whole = prepare_data(_cfg(tmp_path, own, regions_kw={"no_face": "whole_frame"}),
                         progress=False)  # fmt: skip
    row = whole.samples[whole.samples["sample_id"] == target["sample_id"]].iloc[0]
    assert row["region"] == "frame" and row["face_frames"] == 0 and whole.excluded == []


def test_all_clips_excluded_is_an_error(tmp_path: Path, scene: Path) -> None:
    own = _own(scene, tmp_path)
    for sample in load_samples_only(_cfg(tmp_path, own))[0]["sample_id"]:
        _hide_face(own, sample, list(range(8)))
    with pytest.raises(DataError, match=r"all 6 clips show a face in fewer than 50%.*nothing "):
        prepare_data(_cfg(tmp_path, own, faces_kw={"on_low_coverage": "exclude"}),
                     progress=False)  # fmt: skip


# -------------------------------------------------------------------------------- blank frames
def test_a_blank_frame_is_never_selected(tmp_path: Path, scene: Path) -> None:
    own = _own(scene, tmp_path)
    first = load_samples_only(_cfg(tmp_path, own))[0].iloc[0]
    frames = media.list_frames(_folder(own, first["sample_id"]))
    black_no, black = frames[3]
    size = Image.open(black).size
    Image.new("RGB", size).save(black, quality=95)  # a black glitch frame
    data = prepare_data(_cfg(tmp_path, own), progress=False)
    i = int(np.flatnonzero(data.samples["sample_id"] == first["sample_id"])[0])
    numbers = _numbers(data)
    assert black_no not in numbers[i] and len(numbers[i]) == 6
    assert data.samples["blank_skipped"].tolist()[i] == 1
    assert data.samples["blank_skipped"].sum() == 1 and data.samples["blank_selected"].sum() == 0
    assert data.faces["blank_skipped"] == 1


# ----------------------------------------------------------------------------- per-clip boxes
def test_per_clip_boxes_are_identical_across_a_clip(tmp_path: Path, scene: Path) -> None:
    cfg = _cfg(tmp_path, scene, regions_kw={"policy": "au_oracle"},
               faces_kw={"boxes": "per_clip"})  # fmt: skip
    data = prepare_data(cfg, progress=False)
    points = np.load(data.path / "landmarks.npy")
    numbers = _numbers(data)
    for i, row in data.samples.iterrows():
        assert (points[i] == points[i][0]).all()  # one set of landmarks for every frame
        frames, gt = _gt(row["path"], numbers[i])
        _, distinct = np.unique(numbers[i], return_index=True)
        np.testing.assert_allclose(points[i][0], np.median(gt[distinct], axis=0), atol=1e-4)
        box = regions.landmark_box(points[i][0][list(regions.REGION_LANDMARKS[row["region"]])],
                                   frames.shape[2], frames.shape[1])  # fmt: skip
        for t in range(6):  # every frame cut with the same box
            np.testing.assert_array_equal(data.region_clips[i, t],
                                          regions.crop(frames[t], box, 32, 32))  # fmt: skip
    # per_frame (annotated: the auto default) follows each frame's own landmarks
    per_frame = prepare_data(_cfg(tmp_path, scene, regions_kw={"policy": "au_oracle"}),
                             progress=False)  # fmt: skip
    moving = np.load(per_frame.path / "landmarks.npy")
    assert not (moving[0] == moving[0][0]).all()


# ------------------------------------------------------------------------------ face crop (A)
@pytest.mark.parametrize("landmarks", ["annotated", "dlib"])
def test_branch_a_face_crop_contains_the_ground_truth_face(
    tmp_path: Path, scene: Path, landmarks: str
) -> None:
    if landmarks == "dlib":
        pytest.importorskip("dlib")
    cfg = _cfg(tmp_path, scene, regions_kw={"landmarks": landmarks, "upsample": 1},
               faces_kw={"global": "face"}, size=48)  # fmt: skip
    data = prepare_data(cfg, progress=False)
    assert (data.samples["face_coverage"] == 1.0).all()
    points = np.load(data.path / "landmarks.npy")
    numbers = _numbers(data)
    margin = cfg.faces.margin
    for i, row in data.samples.iterrows():
        frames, gt = _gt(row["path"], numbers[i])
        if landmarks == "dlib":  # auto: per-clip boxes from the detected landmarks
            assert (points[i] == points[i][0]).all()
        for t in range(6):
            x0, y0, x1, y1 = regions.face_box(points[i][t], margin)
            assert x0 <= gt[t][:, 0].min() and gt[t][:, 0].max() < x1, (i, t)
            assert y0 <= gt[t][:, 1].min() and gt[t][:, 1].max() < y1, (i, t)
            assert (x1 - x0) == (y1 - y0)  # square: aspect kept
            crop = regions.crop_padded(frames[t], (x0, y0, x1, y1))
            np.testing.assert_array_equal(data.global_clips[i, t], regions.resize(crop, 48, 48))
        width = frames.shape[2]
        face_w = np.ptp(gt[:, :, 0], axis=1).mean()
        assert face_w / width < 0.5  # raw framing: the face is a small part of the frame


def test_fixed_bands_apply_to_the_face_box(tmp_path: Path, scene: Path) -> None:
    """With a face crop, `fixed` cuts its bands from the face: the upper band holds the eyes,
    the mouth band the mouth (on raw frames, fractions of the frame land elsewhere)."""
    cfg = _cfg(tmp_path, scene, regions_kw={"policy": "fixed"}, faces_kw={"global": "face"})
    data = prepare_data(cfg, progress=False)
    numbers = _numbers(data)
    (_, upper), (_, mouth) = regions.FIXED_BOXES
    for i, row in data.samples.iterrows():
        frames, gt = _gt(row["path"], numbers[i])
        crops = regions.face_frames(frames, gt, cfg.faces.margin)
        np.testing.assert_array_equal(data.region_clips[i],
                                      regions.region_frames(crops, None, "fixed", 32))  # fmt: skip
        x0, y0, x1, _ = regions.face_box(gt[0], cfg.faces.margin)
        side = x1 - x0
        rel = (gt[0] - [x0, y0]) / side  # landmarks as fractions of the face box
        eyes, lips = rel[36:48], rel[48:68]
        assert (eyes[:, 1] > upper[0]).all() and (eyes[:, 1] < upper[1]).all()
        assert (eyes[:, 0] > upper[2]).all() and (eyes[:, 0] < upper[3]).all()
        assert (lips[:, 1] > mouth[0]).all() and (lips[:, 1] < mouth[1]).all()
        assert (lips[:, 0] > mouth[2]).all() and (lips[:, 0] < mouth[3]).all()
    # `none` with a face crop: branch B is the face crop too (no separate array)
    none = prepare_data(_cfg(tmp_path, scene, regions_kw={"policy": "none"},
                             faces_kw={"global": "face"}), progress=False)  # fmt: skip
    assert none.region_clips is None and (none.samples["face_coverage"] == 1.0).all()


def test_face_crop_needs_landmarks(tmp_path: Path, scene: Path) -> None:
    cfg = _cfg(tmp_path, scene, regions_kw={"policy": "none", "landmarks": "none"},
               faces_kw={"global": "face"})  # fmt: skip
    with pytest.raises(ConfigError, match="data.faces.global: face crops branch A to the face"):
        prepare_data(cfg, progress=False)


# ---------------------------------------------------------------------------- landmark cache
def test_landmarks_are_detected_once_per_data_config(tmp_path: Path, scene: Path) -> None:
    pytest.importorskip("dlib")

    def counts(**kw) -> dict:
        cfg = _cfg(tmp_path, scene, regions_kw={"landmarks": "dlib", **kw.pop("regions", {})},
                   **kw)  # fmt: skip
        data = prepare_data(cfg, progress=False)
        return json.loads((data.path / "manifest.json").read_text())["counts"]

    first = counts(regions={"policy": "au_oracle"})
    assert (first["landmarks_detected"], first["landmarks_reused"]) == (6, 0)
    for other in ({"regions": {"policy": "all"}},
                  {"regions": {"policy": "fixed"}, "faces_kw": {"global": "face"}},
                  {"regions": {"policy": "all"}, "size": 24}):  # fmt: skip
        again = counts(**other)  # same frames, same detector: nothing detected
        assert (again["landmarks_detected"], again["landmarks_reused"]) == (0, 6), other
    other_detector = counts(regions={"policy": "all"}, faces_kw={"min_score": 0.3})
    assert other_detector["landmarks_detected"] == 6
    other_frames = counts(regions={"policy": "all"}, frames={"count": 5})
    assert other_frames["landmarks_detected"] == 6
    assert len(list((tmp_path / "cache" / ".landmarks").rglob("*.npz"))) == 18


# ------------------------------------------------------------------------------ config / keys
def test_face_settings_enter_the_key_only_where_they_change_the_arrays(tmp_path: Path) -> None:
    def key(**kw) -> str:
        faces = kw.pop("faces", {})
        return config_hash(key_config(_cfg(tmp_path, tmp_path, regions_kw=kw, faces_kw=faces)))

    legacy = {k: v for k, v in FacesConfig.LEGACY.items()}
    # no face detection (policy fixed/none, whole frame): nothing of data.faces counts
    for policy in ("fixed", "none"):
        assert key(policy=policy, landmarks="dlib") == key(
            policy=policy, landmarks="dlib", faces={"min_score": 0.9, "boxes": "per_clip"}
        )
        assert key(policy=policy) != key(policy=policy, faces={"global": "face"})
    # annotated landmarks: detector settings do not count; auto boxes are per_frame (as before)
    assert key() == key(faces=legacy) == key(faces={"min_score": 0.9, "track": False})
    assert key() != key(faces={"boxes": "per_clip"})
    # dlib: the original's settings keep the key a config had before data.faces existed
    assert key(landmarks="dlib", faces=legacy) != key(landmarks="dlib")
    assert key(landmarks="dlib", faces=legacy) == key(
        landmarks="dlib", faces={**legacy, "margin": 0.3}
    )
    # error / keep change no array; exclude changes the clips
    assert key(faces={"on_low_coverage": "keep"}) == key(faces={"on_low_coverage": "error"})
    assert key(faces={"on_low_coverage": "exclude"}) != key()
    assert "faces" not in key_config(_cfg(tmp_path, tmp_path))


def test_faces_section_is_validated_and_hashed_only_when_set() -> None:
    from mer.config import from_dict, get_dotted, to_dict

    cfg = from_dict({"data": {"faces": {"global": "face", "boxes": "per_clip"}}})
    assert cfg.data.faces.global_ == "face" and get_dotted(cfg, "data.faces.global") == "face"
    assert getattr(cfg.data.faces, "global") == "face"
    assert to_dict(cfg)["data"]["faces"]["global"] == "face"
    # config.yaml shows the resolved faces settings; the hashed (canonical) form leaves them out
    # at their defaults, so configs from before data.faces keep their hashes
    assert to_dict(from_dict({}))["data"]["faces"]["min_score"] == 0.5
    assert "faces" not in to_dict(from_dict({}), canonical=True)["data"]
    assert "faces" not in to_dict(from_dict({"data": {"faces": {}}}), canonical=True)["data"]
    for bad, words in [
        ({"min_score": -0.1}, "data.faces.min_score: expected a value in [0.0, inf]"),
        ({"min_coverage": 1.5}, "data.faces.min_coverage: expected a value in [0.0, 1.0]"),
        ({"boxes": "per_clips"}, "did you mean 'per_clip'"),
        (
            {"global_": "face"},
            "unknown config key 'data.faces.global_'; did you mean 'data.faces.global'",
        ),
        ({"on_low_coverage": "drop"}, "expected one of 'error', 'exclude', 'keep'"),
    ]:
        with pytest.raises(ConfigError) as err:
            from_dict({"data": {"faces": bad}})
        assert words in str(err.value)


# ------------------------------------------------------------------------------------- resume
def test_resume_of_a_sweep_from_before_data_faces(tmp_path: Path) -> None:
    """A sweep written before data.faces existed resumes where the new defaults prepare the same
    data (annotated landmarks: the demo); with dlib landmarks they would not, so --resume is
    refused unless the original's face handling is set, which then resumes."""
    import yaml

    from mer.config import dump_yaml, load_config
    from mer.sweep.options import RunOptions
    from mer.sweep.outdir import check_out_dir as _check_out_dir

    demo = Path(__file__).resolve().parents[1] / "sweeps" / "demo.yaml"
    for landmarks, refused in (("annotated", False), ("dlib", True)):
        out = tmp_path / landmarks
        out.mkdir()
        cfg = load_config(demo, [f"data.regions.landmarks={landmarks}"])
        old = yaml.safe_load(dump_yaml(cfg))
        del old["data"]["faces"]  # as an older mer wrote it: no data.faces section
        (out / "config.yaml").write_text(yaml.safe_dump(old))
        if not refused:
            _check_out_dir(cfg, RunOptions(out=out, resume=True))
            continue
        with pytest.raises(ConfigError) as err:
            _check_out_dir(cfg, RunOptions(out=out, resume=True))
        assert "was started before data.faces existed" in str(err.value)
        assert "full, regions_all, au_upper" in str(err.value)  # the landmark policies
        assert "--set data.faces.min_score=0.0 --set data.faces.track=false" in str(err.value)
        sets = [f"data.regions.landmarks={landmarks}"] + [
            f"data.faces.{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in FacesConfig.LEGACY.items()
        ]
        _check_out_dir(load_config(demo, sets), RunOptions(out=out, resume=True))
        with pytest.raises(ConfigError, match="config differs .* at data.faces.boxes"):
            _check_out_dir(load_config(demo, [*sets, "data.faces.boxes=per_clip"]),
                           RunOptions(out=out, resume=True))  # fmt: skip
