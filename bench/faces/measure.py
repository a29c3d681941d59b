"""The measurements of `python -m bench.faces`, each through mer's own code paths.

- `detector_scores`: dlib scores of the true face and of everything else on the real media, and
  how many detections `data.faces.min_score` rejects.
- `jitter`: mean frame-to-frame shift of branch-B region crops (phase correlation with
  scikit-image, 1/20 px, at the crop's output size) on a still face (one real frame, fresh
  sensor noise per frame, through H.264) and on the talking face, per_frame vs per_clip boxes.
- `coverage`: a CASME II-layout dataset cut from the real media (a face clip, a clip cut across
  face and no-face footage, a face with a confident second face, a face with a black frame)
  prepared through `mer.data.cache.prepare_data` under each `on_low_coverage`.
- `prepare_time`: seconds per clip of two region policies prepared one after the other with the
  landmark cache shared (the second detects nothing) and not shared (separate caches).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.faces.media import Clip, Media, write_casme2
from mer.config import DataConfig, FacesConfig, FramesConfig, RegionsConfig
from mer.data import faces, regions
from mer.data.cache import prepare_data
from mer.datasets.media import read_clip, read_image, to_grey
from mer.datasets.synthetic.writers import write_mp4
from mer.errors import DataError

REGIONS = ("eyebrows", "eyes", "mouth", "cheeks", "face")


@dataclass
class Row:
    measure: str
    setting: str
    value: str
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, measure: str, setting: str, value: str, note: str = "") -> None:
        self.rows.append(Row(measure, setting, value, note))

    def markdown(self) -> str:
        lines = ["| measure | setting | value | note |", "|---|---|---|---|"]
        lines += [f"| {r.measure} | {r.setting} | {r.value} | {r.note} |" for r in self.rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------ detector scores
def _scores(det: faces.DlibLandmarks, frames: list[np.ndarray]) -> list[list[float]]:
    out = []
    for f in frames:
        _, scores, _ = det.detector.run(np.ascontiguousarray(f), det.upsample, 0.0)  # type: ignore[attr-defined]
        out.append([float(s) for s in scores])
    return out


def detector_scores(media: Media, folder: Path, res: Results, upsample: int) -> None:
    """Scores of true faces and false detections; detections below min_score per source."""
    det = faces.DlibLandmarks(upsample)
    min_score = FacesConfig().min_score
    face = _scores(det, list(media.face))
    best = [max(s) for s in face if s]
    others = [x for s in face for x in sorted(s)[:-1]]
    res.add("dlib score, talking face", f"upsample {upsample}",
            f"{min(best):.2f}-{max(best):.2f}", f"{len(best)}/{len(face)} frames found; "
            f"{len(others)} other detections")  # fmt: skip
    sources = {
        "no-face video": list(media.no_face),
        "talking face, lower third hidden": list(media.occluded(media.face[::6], det)),
        "second face pasted (photo)": list(media.with_intruder(media.face[::6])),
        "multi_face.jpg": [read_image(folder / "multi_face.jpg")],
    }
    try:
        from skimage.data import astronaut

        sources["astronaut (scikit-image)"] = [astronaut()]
    except ImportError:  # scikit-image is a dev extra
        pass
    for name, frames in sources.items():
        scores = [x for s in _scores(det, frames) for x in s]
        low = sorted(x for x in scores if x < min_score)
        shown = f" ({', '.join(f'{x:.2f}' for x in low[:6])}{' ...' if len(low) > 6 else ''})"
        found = f"{len(scores)} (max {max(scores):.2f})" if scores else "0"
        why = f"{len(low)} below min_score {min_score:g} rejected" + (shown if low else "")
        res.add(f"dlib detections, {name}", f"upsample {upsample}", found, why)
    # which face is chosen when a second, confident face passes by (frames 8-15 of 24)
    frames = media.with_intruder(media.face[:24], span=slice(8, 16))
    pos = np.arange(len(frames))
    for track in (False, True):
        chooser = faces.DlibLandmarks(upsample, min_score=min_score, track=track)
        pts = faces.detect_clip(chooser, frames, path=Path("intruder"), positions=pos).points
        wrong = int((np.nanmean(pts[:, :, 0], axis=1) > media.intruder_left).sum())
        res.add("face chosen, second face pasted", "tracked" if track else "most confident",
                f"{wrong}/{len(frames)} frames on the passing face",
                "it is in frames 8-15 only, the subject's face in all 24")  # fmt: skip


# ------------------------------------------------------------------------------------- jitter
def _shift(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(
        to_grey(a).astype(np.float64), to_grey(b).astype(np.float64), upsample_factor=20
    )
    return float(np.hypot(*shift))


def crop_shift(frames: np.ndarray, points: np.ndarray, region: str, size: int) -> float:
    """Mean frame-to-frame shift (px at `size`) of one region's crops cut with `points`."""
    crops = regions.region_frames(frames, points, "au_oracle", size, region=region)
    return float(np.mean([_shift(crops[t], crops[t + 1]) for t in range(len(crops) - 1)]))


def jitter(media: Media, tmp: Path, res: Results, size: int, upsample: int) -> dict:
    """per_frame vs per_clip crop shift on a still and on a talking face (see the module doc)."""
    still_file = tmp / "still.mp4"
    write_mp4(still_file, media.still(30))
    clips = {
        "still face (one real frame, sensor noise, H.264)": read_clip(still_file),
        "talking face (real video, 30 frames)": media.face[:30],
    }
    det = faces.DlibLandmarks(upsample, min_score=FacesConfig().min_score, track=True)
    out: dict = {}
    for name, frames in clips.items():
        pos = np.arange(len(frames))
        found = faces.detect_clip(det, frames, path=Path(name), positions=pos)
        filled, ok = faces.fill_missing(found.points)
        per = {}
        for mode in ("per_frame", "per_clip"):
            points = faces.crop_landmarks(found.points, filled, pos, mode)
            assert points is not None, f"{name}: no face"
            per[mode] = {r: crop_shift(frames, points, r, size) for r in REGIONS}
        for r in REGIONS:
            a, b = per["per_frame"][r], per["per_clip"][r]
            note = f"per_clip / per_frame = {b / a:.2f}" if a > 0 else ""
            res.add(f"crop shift {r} (px at {size})", name, f"{a:.2f} → {b:.2f}", note)
        lm = found.points[ok]
        step = np.linalg.norm(np.diff(lm, axis=0), axis=2).mean() if len(lm) > 1 else 0.0
        res.add("landmark motion (source px)", name, f"{step:.2f}",
                "mean frame-to-frame move of the 68 points")  # fmt: skip
        out[name] = per
    return out


# ----------------------------------------------------------------------------------- datasets
def face_dataset(media: Media, out: Path) -> tuple[Path, Path, list[Clip]]:
    """CASME II-layout clips cut from the real media (see the module doc)."""
    glitch = media.face[24:48].copy()
    glitch[12] = 0  # a black glitch frame inside the clip
    clips = [
        Clip("EP01_face", media.face[:24], subject="sub01"),
        Clip(
            "EP02_across",
            np.concatenate([media.face[48:54], media.no_face[:18]]),
            subject="sub01",
            emotion="surprise",
            aus="1+2",
        ),  # fmt: skip
        Clip(
            "EP03_second_face",
            media.with_intruder(media.face[:24], span=slice(8, 16)),
            subject="sub02",
        ),  # fmt: skip
        Clip("EP04_glitch", glitch, subject="sub02", emotion="disgust", aus="4"),
    ]
    root, sheet = write_casme2(out, clips)
    return root, sheet, clips


def data_config(root: Path, sheet: Path, cache: Path, **kw: object) -> DataConfig:
    """The dataset above at the paper's size, dlib landmarks, T frames by motion_topk."""
    return DataConfig(
        dataset="casme2", root=str(root), annotations=str(sheet), labels="megc3",
        frames=FramesConfig(count=int(kw.pop("count", 8)),
                            select=str(kw.pop("select", "motion_topk"))),
        size=int(kw.pop("size", 128)),
        regions=RegionsConfig(landmarks="dlib", policy=str(kw.pop("policy", "au_oracle")),
                              upsample=int(kw.pop("upsample", 1))),
        faces=FacesConfig(**kw), cache_dir=str(cache),
    )  # fmt: skip


def coverage(root: Path, sheet: Path, tmp: Path, res: Results, upsample: int) -> None:
    """Each clip's coverage, and what each on_low_coverage does with the dataset."""
    for select in ("motion_topk", "uniform"):
        cfg = data_config(root, sheet, tmp / "cov", on_low_coverage="keep", select=select,
                          upsample=upsample)  # fmt: skip
        data = prepare_data(cfg, progress=False)
        for r in data.samples.to_dict("records"):
            res.add(f"coverage {r['sample_id'].split('/')[-1]}", f"select {select}",
                    f"{r['face_frames']}/{cfg.frames.count}",
                    f"longest gap {r['filled_run']}, rejected {r['rejected']}, off track "
                    f"{r['off_track']}, blank skipped {r['blank_skipped']}, blank chosen "
                    f"{r['blank_selected']}")  # fmt: skip
    for policy in ("error", "exclude"):
        cfg = data_config(root, sheet, tmp / "cov", on_low_coverage=policy, select="uniform",
                          upsample=upsample)  # fmt: skip
        try:
            data = prepare_data(cfg, progress=False)
            ex = ", ".join(f"{e['sample_id']} {e['face_coverage']:.0%}" for e in data.excluded)
            res.add("on_low_coverage", policy, f"{len(data.samples)} clips kept",
                    f"excluded: {ex or 'none'}")  # fmt: skip
        except DataError as exc:
            res.add("on_low_coverage", policy, "DataError", str(exc).split(":")[0][:80])


def prepare_time(root: Path, sheet: Path, tmp: Path, res: Results, upsample: int) -> None:
    """Seconds per clip: au_oracle then all, sharing one landmark cache or not."""
    timings = {}
    for how in ("shared", "not shared"):
        for policy in ("au_oracle", "all"):
            cache = tmp / "time" / ("one" if how == "shared" else policy)
            cfg = data_config(root, sheet, cache, policy=policy, on_low_coverage="keep",
                              upsample=upsample)  # fmt: skip
            t0 = time.perf_counter()
            data = prepare_data(cfg, progress=False)
            seconds = (time.perf_counter() - t0) / len(data.samples)
            assert data.path is not None
            counts = json.loads((data.path / "manifest.json").read_text())["counts"]
            timings[(how, policy)] = seconds
            res.add(f"prepare s/clip, then {policy}" if policy == "all" else
                    f"prepare s/clip, first {policy}", f"landmarks {how}", f"{seconds:.2f}",
                    f"{counts['landmarks_detected']} clips detected, "
                    f"{counts['landmarks_reused']} from the landmark cache")  # fmt: skip


def run_all(folder: Path, *, size: int = 128, upsample: int = 1) -> Results:
    res = Results()
    media = Media.load(folder)
    with tempfile.TemporaryDirectory(prefix="mer-bench-faces-") as name:
        tmp = Path(name)
        detector_scores(media, folder, res, upsample)
        jitter(media, tmp, res, size, upsample)
        root, sheet, _ = face_dataset(media, tmp / "data")
        coverage(root, sheet, tmp, res, upsample)
        prepare_time(root, sheet, tmp, res, upsample)
    return res
