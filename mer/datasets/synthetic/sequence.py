"""One subject's face over one frame sequence: landmark tracks, then rendered frames.

A sequence is what lives in one frame folder or video: the neutral face of its subject, one or
more expressions (AU motion bumps between onset and offset), and the distractors every real
recording has: a slow head drift, blinks, brightness flicker and sensor noise. Only the AU motion
carries the class; the distractors are drawn independently of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mer.datasets.synthetic.face import (
    ShapeParams,
    au_field,
    bump,
    canonical_shape,
    close_eyes,
    parse_aus,
    sample_shape_params,
)
from mer.datasets.synthetic.render import FaceStyle, Pose, lighting_field, render_face

REFERENCE_HEIGHT = 128  # AU displacements are given in pixels at this frame height
NOISE_SIGMA = 2.0  # sensor noise, grey levels
FRAMINGS = ("scene", "face")
# Face width as a fraction of the frame height: `scene` shows head, hair and background (CASME II
# "RAW"), `face` fills the frame with the face from the brows to the chin (CASME II "Cropped").
SCENE_SCALE = 0.6
FACE_SCALE = 0.9


@dataclass(frozen=True)
class Subject:
    """A synthetic person: face proportions, appearance and where the head sits in the frame."""

    params: ShapeParams
    shape: np.ndarray  # canonical (68, 2) in face-width units
    style: FaceStyle
    pose: Pose
    lighting: np.ndarray  # (height, width) multiplicative
    height: int
    width: int
    # Pixels per reference pixel of AU motion and head drift beyond the frame-height scaling:
    # 1 for `scene` framing; `face` framing zooms the face, and its motion with it.
    zoom: float = 1.0

    @staticmethod
    def sample(
        rng: np.random.Generator, height: int, width: int, framing: str = "scene"
    ) -> Subject:
        """A random subject; `framing` (FRAMINGS) places and sizes the face in the frame."""
        params = sample_shape_params(rng)
        u_scale = rng.uniform(0.55, 0.65)
        u_cx, u_cy = rng.uniform(-0.04, 0.04), rng.uniform(-0.02, 0.02)
        if framing == "face":  # same draws, so style and lighting match the scene framing
            scale = u_scale * FACE_SCALE / SCENE_SCALE * height
            cx, cy = width / 2 + 0.5 * u_cx * height, height * 0.4 + 0.5 * u_cy * height
        elif framing == "scene":
            scale = u_scale * height
            cx, cy = width / 2 + u_cx * height, height * 0.47 + u_cy * height
        else:
            raise ValueError(f"framing {framing!r}: expected one of {', '.join(FRAMINGS)}")
        pose = Pose(cx=cx, cy=cy, scale=scale, roll=float(np.deg2rad(rng.uniform(-4, 4))))
        return Subject(
            params=params,
            shape=canonical_shape(params),
            style=FaceStyle.sample(rng),
            pose=pose,
            lighting=lighting_field(height, width, rng),
            height=height,
            width=width,
            zoom=FACE_SCALE / SCENE_SCALE if framing == "face" else 1.0,
        )


@dataclass(frozen=True)
class Expression:
    """One micro-expression inside a sequence: AU string and 0-based frame indices."""

    aus: str
    onset: int
    apex: int
    offset: int
    amplitude: float = 1.0  # per-clip variation around the nominal AU displacement


@dataclass(frozen=True)
class Blink:
    """An eye blink (distractor): closure peaks at `apex` (0 open .. 1 shut)."""

    onset: int
    apex: int
    offset: int
    closure: float


@dataclass
class SequencePlan:
    """Everything needed to render one frame folder or video deterministically."""

    n_frames: int
    expressions: list[Expression]
    blinks: list[Blink] = field(default_factory=list)
    drift_px: float = 0.3  # head drift amplitude at 128 px
    render_seed: tuple[int, ...] = (0,)


def plan_blinks(rng: np.random.Generator, n: int, p: float = 0.35) -> list[Blink]:
    """Zero or one blink at a random time, independent of any expression."""
    if n < 3 or rng.random() >= p:
        return []
    apex = int(rng.integers(0, n))
    half = max(1, round(n / 10))
    return [Blink(apex - half, apex, apex + half, float(rng.uniform(0.6, 0.95)))]


def landmark_track(
    subject: Subject, plan: SequencePlan, intensity: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[Pose]]:
    """Landmarks (n, 68, 2) float64 in pixels, and the head pose of every frame."""
    n = plan.n_frames
    px = subject.height / REFERENCE_HEIGHT * subject.zoom
    shape = np.broadcast_to(subject.shape * subject.pose.scale, (n, 68, 2)).copy()
    closure = np.zeros(n)
    for e in plan.expressions:
        fld, close = au_field(parse_aus(e.aus))
        act = bump(n, e.onset, e.apex, e.offset)
        shape += act[:, None, None] * fld[None] * (e.amplitude * intensity * px)
        closure = np.maximum(closure, close * act)
    for b in plan.blinks:
        closure = np.maximum(closure, b.closure * bump(n, b.onset, b.apex, b.offset))
    shape = close_eyes(shape, closure)

    walk = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    walk -= walk[0]
    walk /= max(float(np.abs(walk).max()), 1e-9)
    drift = walk * plan.drift_px * px + rng.normal(0.0, 0.03 * px, size=(n, 2))
    p0 = subject.pose
    c, s = np.cos(p0.roll), np.sin(p0.roll)
    rot = np.array([[c, -s], [s, c]])
    lm = shape @ rot.T + np.array([p0.cx, p0.cy]) + drift[:, None, :]
    poses = [Pose(p0.cx + dx, p0.cy + dy, p0.scale, p0.roll) for dx, dy in drift]
    return lm, poses


def supersampling(height: int) -> int:
    """Canvas factor: about 512 px high, at least 2x, at most 8x."""
    return int(min(8, max(2, round(512 / height))))


def render_sequence(
    subject: Subject, plan: SequencePlan, intensity: float = 1.0, grey: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 (n, H, W, 3) or (n, H, W) when grey, and landmarks float32 (n, 68, 2)."""
    rng = np.random.default_rng(plan.render_seed)
    lm, poses = landmark_track(subject, plan, intensity, rng)
    n, h, w = plan.n_frames, subject.height, subject.width
    ss = supersampling(h)
    flicker = (
        1.0
        + 0.012 * np.sin(2 * np.pi * np.arange(n) / rng.uniform(6, 20) + rng.uniform(0, 6.3))
        + rng.normal(0.0, 0.004, n)
    )
    frames = np.empty((n, h, w) if grey else (n, h, w, 3), dtype=np.uint8)
    light = subject.lighting[:, :, None]
    grey_w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for t in range(n):
        img = render_face(lm[t], poses[t], subject.style, h, w, ss, subject.params.jaw_top)
        img *= light * np.float32(flicker[t])
        if grey:
            img = img @ grey_w
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(NOISE_SIGMA)
        np.clip(img, 0, 255, out=img)
        frames[t] = np.rint(img, out=img)
    return frames, lm.astype(np.float32)
