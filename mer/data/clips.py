"""One clip → its branch arrays: the per-clip pipeline that `mer.data.cache` runs for every sample.

list frames → decode (all frames when the selection looks at pixels, else only the T chosen) →
select T positions (never a blank frame where the selection looks at pixels) → landmarks on
those frames when the region policy or the face crop needs them (from the landmark cache when
another data config detected them already; mer.data.faces.store) → the face coverage and the
landmarks the crops use (per frame or per clip) → branch A (whole frame or face crop, resized)
and branch B (region crops, see mer.data.regions).

Kept apart from the cache (and free of pandas) so that decoding worker processes start fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer.data import faces, frames, regions
from mer.data.faces import store
from mer.datasets import media
from mer.errors import DataError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mer.config import DataConfig


@dataclass(frozen=True)
class ClipSettings:
    """The data-config values the per-clip pipeline uses."""

    count: int
    select: str
    size: int
    policy: str
    landmarks: str
    upsample: int
    margin: float
    keep_aspect: bool
    no_face: str
    au_codes: tuple[int, ...]
    video_backend: str = "decord"
    window: str = "clip"  # "annotated" | "clip" (frames.selection_window)
    skip: int = 0
    # data.faces (the defaults here are the original's behaviour)
    min_score: float = 0.0
    track: bool = False
    boxes: str = "per_frame"  # resolved: "per_frame" | "per_clip"
    global_crop: str = "frame"  # "frame" | "face"
    face_margin: float = 0.1
    exclude_low: float | None = None  # min_coverage when on_low_coverage is exclude
    landmark_cache: str | None = None  # root of the landmark cache (dlib only); None: none

    @classmethod
    def from_config(cls, data_cfg: DataConfig) -> ClipSettings:
        r, fc = data_cfg.regions, data_cfg.faces
        exclude = fc.on_low_coverage == "exclude" and fc.min_coverage > 0
        return cls(
            count=data_cfg.frames.count, select=data_cfg.frames.select, size=data_cfg.size,
            policy=r.policy, landmarks=r.landmarks, upsample=r.upsample, margin=r.margin,
            keep_aspect=r.keep_aspect, no_face=r.no_face, au_codes=tuple(r.au_codes),
            video_backend=data_cfg.video_backend, window=frames.selection_window(data_cfg),
            skip=data_cfg.frames.skip, min_score=fc.min_score, track=fc.track,
            boxes=faces.resolve_boxes(fc.boxes, r.landmarks), global_crop=fc.global_,
            face_margin=fc.margin, exclude_low=fc.min_coverage if exclude else None,
            landmark_cache=data_cfg.cache_dir if r.landmarks == "dlib" else None,
        )  # fmt: skip

    @property
    def uses_faces(self) -> bool:
        """Whether this pipeline needs landmarks: landmark regions, or a face crop."""
        return self.policy in regions.NEEDS_LANDMARKS or self.global_crop == "face"

    def detector_settings(self) -> dict[str, object]:
        """What the detections depend on (the landmark cache key)."""
        return {
            "provider": self.landmarks, "upsample": self.upsample, "min_score": self.min_score,
            "track": self.track, "video_backend": self.video_backend,
        }  # fmt: skip


@dataclass(frozen=True)
class ClipJob:
    """What the pipeline needs from a sample-table row (NA already turned into None)."""

    sample_id: str
    path: str
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    aus: tuple[int, ...] = ()
    where: str = ""  # the annotation row (file, sheet, row) or folder the sample came from


@dataclass
class FaceStats:
    """What the sample table records about a clip's faces and frames (mer.data.cache)."""

    face_frames: int = -1  # selected frames with a (tracked) face; -1: faces not looked for
    filled_run: int = -1  # longest run of selected frames without a face; -1: not looked for
    rejected: int = 0  # detections below data.faces.min_score
    off_track: int = 0  # frames whose only detections lay off the tracked face
    blank_skipped: int = 0  # blank/constant frames the selection passed over (motion_topk)
    blank_selected: int = 0  # blank/constant frames among the T chosen
    detected: bool = False  # landmarks detected now (False: from the landmark cache, or none)

    def coverage(self, count: int) -> float:
        return self.face_frames / count if self.face_frames >= 0 else float("nan")


@dataclass
class ClipArrays:
    global_clip: np.ndarray  # (T, S, S, 3) uint8
    region_clip: np.ndarray | None  # (T, S, S, 3) uint8; None for policy none
    numbers: np.ndarray  # (T,) int64 chosen frame numbers
    landmarks: np.ndarray | None  # (T, 68, 2) float32 used for the crops; None if not used/found
    region: str  # value of the sample table's `region` column
    face_frames: int  # selected frames with a detected face; -1 when landmarks are not used
    stats: FaceStats | None = None


_PROVIDERS: dict[tuple, faces.LandmarkProvider | None] = {}


def provider(s: ClipSettings) -> faces.LandmarkProvider | None:
    """The landmark provider, created once per process (dlib's predictor takes ~1 s to load)."""
    key = (s.landmarks, s.upsample, s.min_score, s.track)
    if key not in _PROVIDERS:
        _PROVIDERS[key] = faces.get_provider(
            s.landmarks, upsample=s.upsample, min_score=s.min_score, track=s.track
        )
    return _PROVIDERS[key]


def window_positions(
    numbers: list[int], onset: int | None, apex: int | None, offset: int | None
) -> tuple[int | None, int | None, int | None]:
    """Annotated frame numbers → positions in the clip: the first frame ≥ onset, the last frame
    ≤ offset, the frame nearest the apex (frame numbers may have gaps)."""
    arr = np.asarray(numbers)
    on = off = ap = None
    if onset is not None:
        if onset > arr[-1]:
            raise DataError(f"onset frame {onset} is after the clip's last frame {arr[-1]}")
        on = int(np.searchsorted(arr, onset, "left"))
    if offset is not None:
        if offset < arr[0]:
            raise DataError(f"offset frame {offset} is before the clip's first frame {arr[0]}")
        off = int(np.searchsorted(arr, offset, "right")) - 1
    if apex is not None:
        ap = int(np.argmin(np.abs(arr - apex)))
    return on, ap, off


def process_clip(job: ClipJob, s: ClipSettings) -> ClipArrays:
    """One clip → its branch arrays. DataErrors are prefixed with the sample id."""
    try:
        return _process(job, s)
    except DataError as exc:
        at = f" ({job.where})" if job.where else ""
        raise DataError(f"{job.sample_id}{at}: {exc}") from None


def selection_span(
    job: ClipJob, numbers: list[int], s: ClipSettings
) -> tuple[int, int, int | None]:
    """The positions lo..hi (inclusive) the selection looks at, and the apex position relative
    to lo (None when unknown): the annotated window or the whole clip, less `skip` frames."""
    lo, hi, apex = 0, len(numbers) - 1, None
    if s.window == "annotated":
        on, ap, off = window_positions(numbers, job.onset, job.apex, job.offset)
        lo = lo if on is None else on
        hi = hi if off is None else off
        if lo > hi:  # onset..offset falls in a gap of the frame numbers
            raise DataError(
                f"no frame numbered between onset {job.onset} and offset {job.offset} (the clip "
                f"has {len(numbers)} frames, {numbers[0]}..{numbers[-1]}, with gaps)"
            )
        if ap is not None and s.select in frames.NEEDS_WINDOW:
            if lo + s.skip <= ap <= hi:
                apex = ap - (lo + s.skip)
            else:
                skipped = ap >= lo and s.skip > 0
                log.warning(
                    "%s: apex frame %s is %s frames %s..%s selected from: not forced",
                    job.sample_id, numbers[ap],
                    "among the data.frames.skip frames dropped before the"
                    if skipped else "outside the onset..offset",
                    numbers[min(lo + s.skip, hi)], numbers[hi],
                )  # fmt: skip
    if lo + s.skip > hi:
        raise DataError(
            f"data.frames.skip {s.skip} drops all {hi - lo + 1} frames of the "
            f"{'onset..offset window' if s.window == 'annotated' else 'clip'}"
        )
    return lo + s.skip, hi, apex


def _select(
    job: ClipJob, s: ClipSettings, src: media.ClipSource
) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions, decoded frames, blank frames skipped) of the T selected frames.

    A selection that looks at pixels decodes every frame of the span once, in one pass, and
    keeps the chosen frames from that pass (frames.MotionStream): a video is never decoded a
    second time for them, and a long clip is never held in memory whole."""
    lo, hi, apex = selection_span(job, src.numbers, s)
    span = np.arange(lo, hi + 1, dtype=np.int64)
    if s.select not in frames.NEEDS_PIXELS:
        idx = lo + frames.select_frames(len(span), s.count, s.select, apex_idx=apex)
        return idx, src.read(idx), 0
    stream = frames.MotionStream(len(span), s.count)
    for frame in src.stream(span):
        stream.add(frame)
    rel, clip, blank = stream.result()
    skipped = blank if 0 < blank < len(span) else 0  # frames.select_frames skips them
    return lo + rel, clip, skipped


def _detect(
    s: ClipSettings, src: media.ClipSource, clip: np.ndarray, idx: np.ndarray
) -> tuple[faces.FaceDetections, bool]:
    """The clip's detections, from the landmark cache when there (True: detected now)."""
    prov = provider(s)
    assert prov is not None  # the cache refuses such a config before any decoding
    key = None
    if s.landmark_cache is not None:
        key = store.store_key(src.path, src.files, idx, s.detector_settings())
        cached = store.load(Path(s.landmark_cache), key, len(idx))
        if cached is not None:
            return cached, False
    det = faces.detect_clip(prov, clip, path=Path(src.path), positions=idx)
    if key is not None:
        store.save(Path(s.landmark_cache), key, det)  # type: ignore[arg-type]
    return det, True


def _process(job: ClipJob, s: ClipSettings) -> ClipArrays:
    src = media.open_clip(job.path, backend=s.video_backend)
    idx, clip, skipped = _select(job, s, src)
    stats = FaceStats(blank_skipped=skipped, blank_selected=int(frames.blank_mask(clip).sum()))
    points = None
    if s.uses_faces:
        det, stats.detected = _detect(s, src, clip, idx)
        filled, found = faces.fill_missing(det.points)
        cover = faces.Coverage.of(found)
        stats.face_frames, stats.filled_run = cover.frames, cover.filled_run
        stats.rejected, stats.off_track = det.rejected, det.off_track
        if cover.frames == 0:
            if s.exclude_low is None:  # no face and not excluded: data.regions.no_face
                faces.no_face_fallback(src.path, len(clip), s.no_face)
            filled = None
        points = faces.crop_landmarks(det.points, filled, idx, s.boxes)
    if s.policy == "au_oracle":
        region = regions.oracle_region(job.aus, s.au_codes)
    else:
        region = regions.POLICY_REGION[s.policy]
    if s.policy in regions.NEEDS_LANDMARKS and points is None:
        region = regions.WHOLE_FRAME
    whole = clip
    if s.global_crop == "face" and points is not None:
        whole = regions.face_frames(clip, points, s.face_margin)  # type: ignore[assignment]
    region_clip = None
    if s.policy == "fixed":
        region_clip = regions.region_frames(whole, None, "fixed", s.size)
    elif s.policy != "none":
        region_clip = regions.region_frames(
            clip, points, s.policy, s.size, region=region if s.policy == "au_oracle" else "face",
            margin=s.margin, keep_aspect=s.keep_aspect,
        )  # fmt: skip
    return ClipArrays(
        global_clip=regions.global_frames(whole, s.size),
        region_clip=region_clip,
        numbers=np.asarray(src.numbers, dtype=np.int64)[idx],
        landmarks=points if s.policy in regions.NEEDS_LANDMARKS else None,
        region=region,
        face_frames=stats.face_frames,
        stats=stats,
    )
