"""Draw a face from its 68 landmarks: PIL at a supersampled resolution, box-downsampled.

Supersampling (canvas `ss` times the frame) makes sub-pixel landmark motion visible as smooth
intensity changes at the frame resolution, as a real camera would record it. Lighting, flicker and
sensor noise are applied afterwards at the frame resolution (they belong to the camera, not the
face).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    """Head pose of one frame: centre of the face frame (px), face width (px), roll (radians)."""

    cx: float
    cy: float
    scale: float
    roll: float

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """Face-frame points (face-width units) to pixel coordinates."""
        c, s = np.cos(self.roll), np.sin(self.roll)
        rot = np.array([[c, -s], [s, c]])
        return np.asarray(pts, dtype=float) * self.scale @ rot.T + (self.cx, self.cy)


@dataclass(frozen=True)
class FaceStyle:
    """A subject's appearance: colours and stroke widths (widths in face-width units)."""

    skin: Color
    lip: Color
    brow: Color
    hair: Color
    iris: Color
    background: Color
    brow_width: float = 0.035
    shadow_side: float = 1.0  # +1: nose shadow on the image right

    @staticmethod
    def sample(rng: np.random.Generator) -> FaceStyle:
        t = rng.uniform(0.0, 1.0)
        light, dark = np.array([236, 204, 178]), np.array([122, 84, 62])
        skin = light + t * (dark - light) + rng.uniform(-8, 8, 3)
        lip = skin * np.array([0.86, 0.58, 0.6]) + np.array([25, 0, 5]) + rng.uniform(-6, 6, 3)
        hair_v = rng.uniform(20, 90)
        hair = np.array([hair_v * 1.1, hair_v * 0.85, hair_v * 0.7])
        brow = hair * rng.uniform(0.7, 1.0)
        iris = rng.choice(np.array([[70, 45, 30], [45, 35, 30], [60, 80, 100], [80, 70, 45]]))
        bg = rng.uniform(60, 200) * (1 + rng.uniform(-0.15, 0.15, 3))

        def c(v: np.ndarray) -> Color:
            r, g, b = (int(x) for x in np.clip(np.round(v), 0, 255))
            return (r, g, b)

        return FaceStyle(
            skin=c(skin),
            lip=c(lip),
            brow=c(brow),
            hair=c(hair),
            iris=c(iris),
            background=c(bg),
            brow_width=float(rng.uniform(0.028, 0.045)),
            shadow_side=float(rng.choice([-1.0, 1.0])),
        )


def shade(color: Color, k: float) -> Color:
    r, g, b = (int(min(255, max(0, round(v * k)))) for v in color)
    return (r, g, b)


def _cr_basis(n: int) -> np.ndarray:
    """Catmull-Rom weights of the 4 control points at n samples per segment, (n, 4)."""
    t = np.arange(n) / n
    return 0.5 * np.stack(
        [-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3],
        axis=1,
    )


_CR4 = _cr_basis(4)


def catmull_rom(pts: np.ndarray, closed: bool, n: int = 4) -> np.ndarray:
    """Smooth curve through `pts` (k, 2) with `n` samples per segment."""
    p = np.asarray(pts, dtype=float)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([p[:1], p, p[-1:]])
    segs = len(ext) - 3
    ctrl = np.stack([ext[i : i + segs] for i in range(4)], axis=1)  # (segs, 4, 2)
    basis = _CR4 if n == 4 else _cr_basis(n)
    curve = np.einsum("tk,skd->std", basis, ctrl).reshape(-1, 2)
    return curve if closed else np.concatenate([curve, p[-1:]])


def _ellipse(
    center: tuple[float, float],
    radii: tuple[float, float],
    a0: float = 0.0,
    a1: float = 2 * np.pi,
    n: int = 36,
) -> np.ndarray:
    a = np.linspace(a0, a1, n)
    return np.stack([center[0] + radii[0] * np.cos(a), center[1] + radii[1] * np.sin(a)], 1)


# Forehead outline from jaw point 16 over the top to jaw point 0, in face units (built per frame
# from the pose so that it follows the head).
_FOREHEAD_A = np.linspace(0.0, np.pi, 15)[1:-1]


def _forehead(jaw_top: float) -> np.ndarray:
    a = _FOREHEAD_A
    top = 0.64
    return np.stack([0.5 * np.cos(a), jaw_top - (top + jaw_top) * np.sin(a) ** 0.6], 1)


_HAIR_BACK = _ellipse((0.0, -0.3), (0.62, 0.52))
_FRINGE = _ellipse((0.0, -0.33), (0.57, 0.37), np.pi + 0.3, 2 * np.pi - 0.3, 24)
_NECK = np.array([(-0.25, 0.3), (0.25, 0.3), (0.3, 2.5), (-0.3, 2.5)])
_EARS = (_ellipse((-0.5, -0.02), (0.06, 0.12), n=20), _ellipse((0.5, -0.02), (0.06, 0.12), n=20))


def render_face(
    lm: np.ndarray,
    pose: Pose,
    style: FaceStyle,
    height: int,
    width: int,
    ss: int,
    jaw_top: float,
) -> np.ndarray:
    """Draw one frame; returns float32 (height, width, 3) in 0..255 (before lighting and noise).

    `lm` (68, 2) are pixel coordinates; `pose` places the parts that have no landmarks (forehead,
    hair, ears, neck); `jaw_top` is the subject's jaw-top height in face units.
    """
    off = (ss - 1) / 2.0

    def cv(p: np.ndarray) -> list[float]:  # flat x0, y0, x1, y1, ... on the canvas
        return (np.asarray(p, dtype=float) * ss + off).ravel().tolist()

    s = pose.scale * ss
    img = Image.new("RGB", (width * ss, height * ss), style.background)
    d = ImageDraw.Draw(img)
    skin = style.skin
    d.polygon(cv(pose.to_px(_HAIR_BACK)), fill=style.hair)
    d.polygon(cv(pose.to_px(_NECK)), fill=shade(skin, 0.8))
    for ear in _EARS:
        d.polygon(cv(pose.to_px(ear)), fill=shade(skin, 0.88))
    forehead = pose.to_px(_forehead(jaw_top))
    outline = np.concatenate([lm[:17], forehead])  # 0..16 then over the top back to 0
    d.polygon(cv(outline), fill=shade(skin, 0.9))
    centre = pose.to_px(np.array([[0.0, 0.05]]))[0]
    d.polygon(cv(centre + 0.88 * (outline - centre)), fill=skin)
    d.polygon(cv(pose.to_px(_FRINGE)), fill=style.hair)

    # Eyes: sclera, iris, pupil, then skin over whatever lies outside the lids.
    iris_r = 0.045 * pose.scale
    for lo in (36, 42):
        eye = lm[lo : lo + 6]
        curve = catmull_rom(eye, closed=True)
        d.polygon(cv(curve), fill=(228, 226, 220))
        c = 0.5 * (eye[0] + eye[3])
        for r, col in ((iris_r, style.iris), (0.42 * iris_r, (20, 16, 14))):
            d.ellipse([*(np.array(c) - r) * ss + off, *(np.array(c) + r) * ss + off], fill=col)
        upper = catmull_rom(eye[[0, 1, 2, 3]], closed=False)
        lower = catmull_rom(eye[[3, 4, 5, 0]], closed=False)
        m = iris_r + 2.0
        x0, x1 = min(eye[0, 0], eye[3, 0]) - m, max(eye[0, 0], eye[3, 0]) + m
        top, bot = c[1] - 2 * m, c[1] + 2 * m
        left_first = eye[0, 0] < eye[3, 0]
        xa, xb = (x0, x1) if left_first else (x1, x0)
        d.polygon(
            cv(
                np.concatenate(
                    [upper, [(xb, upper[-1, 1]), (xb, top), (xa, top), (xa, upper[0, 1])]]
                )
            ),
            fill=skin,
        )
        d.polygon(
            cv(
                np.concatenate(
                    [lower, [(xa, lower[-1, 1]), (xa, bot), (xb, bot), (xb, lower[0, 1])]]
                )
            ),
            fill=skin,
        )
        d.line(cv(upper), fill=shade(style.brow, 0.6), width=max(1, round(0.013 * s)))
        d.line(cv(lower), fill=shade(skin, 0.8), width=max(1, round(0.006 * s)))

    # Nose: a side shadow along the bridge, the base line and the nostrils.
    side = np.array([style.shadow_side * 0.035 * pose.scale, 0.0])
    d.line(cv(lm[27:31] + side), fill=shade(skin, 0.9), width=max(1, round(0.03 * s)))
    d.line(
        cv(catmull_rom(lm[31:36], closed=False)),
        fill=shade(skin, 0.72),
        width=max(1, round(0.012 * s)),
    )
    nr = 0.017 * pose.scale
    for a, b in ((31, 32), (35, 34)):
        c = 0.5 * (lm[a] + lm[b])
        d.ellipse([*(c - nr) * ss + off, *(c + nr) * ss + off], fill=shade(skin, 0.45))

    # Lips and the line (or gap) between them.
    d.polygon(cv(catmull_rom(lm[48:60], closed=True)), fill=style.lip)
    inner = lm[60:68]
    if float(np.mean(inner[5:8, 1] - inner[[3, 2, 1], 1])) > 0.012 * pose.scale:
        d.polygon(cv(catmull_rom(inner, closed=True)), fill=(60, 25, 25))
    d.line(
        cv(catmull_rom(inner[:5], closed=False)),
        fill=shade(style.lip, 0.45),
        width=max(1, round(0.012 * s)),
    )

    # Brows on top of everything around the eyes.
    bw = max(1, round(style.brow_width * s))
    for lo in (17, 22):
        brow = catmull_rom(lm[lo : lo + 5], closed=False)
        d.line(cv(brow), fill=style.brow, width=bw)
        for end in (brow[0], brow[-1]):
            r = bw / 2 / ss
            d.ellipse([*(end - r) * ss + off, *(end + r) * ss + off], fill=style.brow)
    small = img.reduce(ss) if ss > 1 else img
    return np.array(small, dtype=np.float32)  # writable copy


def lighting_field(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A subject's low-frequency lighting (multiplicative, around 1), float32 (height, width)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    xn, yn = x / max(width - 1, 1) - 0.5, y / max(height - 1, 1) - 0.5
    ang = rng.uniform(0, 2 * np.pi)
    field = 1.0 + rng.uniform(0.08, 0.16) * (np.cos(ang) * xn + np.sin(ang) * yn)
    for _ in range(3):
        fx, fy, ph = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(0, 2 * np.pi)
        field += 0.025 * np.cos(2 * np.pi * (fx * xn + fy * yn) + ph)
    return field.astype(np.float32)
