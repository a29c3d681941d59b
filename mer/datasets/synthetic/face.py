"""Face geometry for the synthetic datasets: a 68-point iBUG shape, per-subject faces, AU motion.

Everything here is landmarks only (no pixels): `render.py` draws a face from these points, so the
landmarks written beside every clip are exact ground truth for the rendered frames.

Conventions
-----------
- iBUG 300-W / dlib order: 0-16 jaw, 17-21 right brow (image left), 22-26 left brow, 27-35 nose,
  36-41 right eye, 42-47 left eye, 48-59 outer lip, 60-67 inner lip.
- The canonical shape lives in a face frame: x to the image right, y down, unit = face width
  (jaw point 0 to point 16), origin between the eyes a little above the nose bridge.
- Pixel coordinates are (x, y) with the centre of the top-left pixel at (0, 0).
- AU displacements are given in pixels of a 128-pixel-high frame and scale with the frame height.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

N_POINTS = 68
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
BROWS = RIGHT_BROW + LEFT_BROW
NOSE = tuple(range(27, 36))
EYES = tuple(range(36, 48))
MOUTH = tuple(range(48, 68))
UPPER_LIDS = (37, 38, 43, 44)
LOWER_LIDS = (40, 41, 46, 47)

# Mirror partner of every point (left/right swap); points on the midline map to themselves.
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)
MIDLINE = tuple(int(i) for i in np.flatnonzero(np.arange(N_POINTS) == MIRROR))


@dataclass(frozen=True)
class ShapeParams:
    """Proportions of a face in face-width units; `sample_shape_params` varies them."""

    jaw_top: float = -0.06
    chin: float = 0.60
    jaw_exp: float = 0.8
    brow_y: float = -0.26
    brow_arch: float = 0.045
    brow_inner: float = 0.07
    brow_outer: float = 0.42
    eye_y: float = -0.12
    eye_cx: float = 0.2
    eye_w: float = 0.19
    eye_h: float = 0.075
    nose_tip: float = 0.13
    nostril_y: float = 0.19
    nose_w: float = 0.095
    mouth_y: float = 0.36
    mouth_w: float = 0.2
    upper_lip: float = 0.05
    lower_lip: float = 0.065


def canonical_shape(p: ShapeParams | None = None) -> np.ndarray:
    """The 68 iBUG points of a frontal neutral face, float64 (68, 2), in face-width units."""
    p = p or ShapeParams()
    pts = np.zeros((N_POINTS, 2))
    a = np.pi * np.arange(17) / 16
    pts[:17, 0] = -0.5 * np.cos(a)
    pts[:17, 1] = p.jaw_top + (p.chin - p.jaw_top) * np.sin(a) ** p.jaw_exp
    t = np.linspace(0.0, 1.0, 5)  # right brow, outer (17) to inner (21)
    pts[17:22, 0] = -(p.brow_outer + (p.brow_inner - p.brow_outer) * t)
    pts[17:22, 1] = p.brow_y - p.brow_arch * np.sin(np.pi * (0.1 + 0.75 * t)) + 0.012 * t
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(p.eye_y, p.nose_tip, 4)
    pts[31:36, 0] = p.nose_w * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    pts[31:36, 1] = p.nostril_y + np.array([-0.02, 0.004, 0.014, 0.004, -0.02])
    cx, w, h, y0 = -p.eye_cx, p.eye_w, p.eye_h, p.eye_y  # right eye: 36 outer ... 39 inner
    pts[36:42] = [
        (cx - w / 2, y0),
        (cx - w / 6, y0 - 0.55 * h),
        (cx + w / 6, y0 - 0.55 * h),
        (cx + w / 2, y0),
        (cx + w / 6, y0 + 0.45 * h),
        (cx - w / 6, y0 + 0.45 * h),
    ]
    mw, my, ul, ll = p.mouth_w, p.mouth_y, p.upper_lip, p.lower_lip
    pts[48:55] = [
        (-mw, my),
        (-0.55 * mw, my - 0.75 * ul),
        (-0.22 * mw, my - ul),
        (0.0, my - 0.82 * ul),
        (0.22 * mw, my - ul),
        (0.55 * mw, my - 0.75 * ul),
        (mw, my),
    ]
    pts[55:60] = [
        (0.55 * mw, my + 0.8 * ll),
        (0.22 * mw, my + ll),
        (0.0, my + 1.02 * ll),
        (-0.22 * mw, my + ll),
        (-0.55 * mw, my + 0.8 * ll),
    ]
    g = 0.004
    pts[60:68] = [
        (-0.85 * mw, my),
        (-0.35 * mw, my - g),
        (0.0, my - g),
        (0.35 * mw, my - g),
        (0.85 * mw, my),
        (0.35 * mw, my + g),
        (0.0, my + g),
        (-0.35 * mw, my + g),
    ]
    # Left brow and eye are the mirror images of the right ones.
    for lo, hi in ((22, 27), (42, 48)):
        idx = np.arange(lo, hi)
        pts[idx, 0] = -pts[MIRROR[idx], 0]
        pts[idx, 1] = pts[MIRROR[idx], 1]
    return pts


def sample_shape_params(rng: np.random.Generator) -> ShapeParams:
    """A plausible individual face: each proportion jittered around the default."""
    d = ShapeParams()

    def j(value: float, spread: float) -> float:
        return float(value + rng.uniform(-spread, spread))

    return ShapeParams(
        jaw_top=j(d.jaw_top, 0.02),
        chin=j(d.chin, 0.05),
        jaw_exp=j(d.jaw_exp, 0.15),
        brow_y=j(d.brow_y, 0.025),
        brow_arch=j(d.brow_arch, 0.02),
        brow_inner=j(d.brow_inner, 0.015),
        brow_outer=j(d.brow_outer, 0.03),
        eye_y=j(d.eye_y, 0.015),
        eye_cx=j(d.eye_cx, 0.02),
        eye_w=j(d.eye_w, 0.02),
        eye_h=j(d.eye_h, 0.012),
        nose_tip=j(d.nose_tip, 0.025),
        nostril_y=j(d.nostril_y, 0.02),
        nose_w=j(d.nose_w, 0.015),
        mouth_y=j(d.mouth_y, 0.03),
        mouth_w=j(d.mouth_w, 0.025),
        upper_lip=j(d.upper_lip, 0.012),
        lower_lip=j(d.lower_lip, 0.015),
    )


# ---------------------------------------------------------------------------------------- AUs
# Displacement of the right half (image left) and the midline, in pixels at 128 px frame height,
# face frame (x to the image right, y down). The left half is the mirror image (dx negated).
_AU_RIGHT: dict[int, list[tuple[int, float, float]]] = {
    1: [(17, 0, -0.4), (18, 0, -0.8), (19, 0, -1.4), (20, 0, -1.8), (21, 0, -2.0)],
    2: [(17, 0, -2.0), (18, 0, -1.8), (19, 0, -1.4), (20, 0, -0.8), (21, 0, -0.4)],
    4: [
        (17, 0.25, 0.4), (18, 0.4, 0.7), (19, 0.6, 1.0), (20, 0.8, 1.3), (21, 1.0, 1.5),
        (37, 0, 0.3), (38, 0, 0.35),
    ],
    5: [(37, 0, -1.3), (38, 0, -1.3)],
    6: [(40, 0, -0.9), (41, 0, -0.9)],
    7: [(40, 0, -1.0), (41, 0, -1.0), (37, 0, 0.4), (38, 0, 0.4)],
    9: [
        (31, 0.3, -1.4), (32, 0.15, -1.3), (33, 0, -1.2), (28, 0, -0.4), (29, 0, -0.7),
        (30, 0, -0.9), (21, 0.2, 0.6), (50, 0, -0.5), (51, 0, -0.5),
    ],
    10: [(48, 0, -0.4), (49, 0, -1.3), (50, 0, -1.8), (51, 0, -1.8), (60, 0, -0.3),
         (61, 0, -1.5), (62, 0, -1.6)],
    12: [
        (48, -1.5, -1.5), (60, -1.3, -1.3), (49, -0.6, -0.8), (59, -0.7, -0.7),
        (67, -0.3, -0.4), (61, -0.3, -0.4), (50, 0, -0.2), (58, 0, -0.2),
    ],
    14: [(48, -1.6, 0), (60, -1.3, 0), (49, -0.5, 0), (59, -0.5, 0), (61, -0.2, 0),
         (67, -0.2, 0)],
    15: [(48, 0, 1.8), (60, 0, 1.4), (49, 0, 0.6), (59, 0, 0.8), (67, 0, 0.3), (61, 0, 0.3)],
    17: [(59, 0, -1.0), (58, 0, -1.3), (57, 0, -1.3), (66, 0, -1.0), (67, 0, -0.9),
         (6, 0, -0.5), (7, 0, -1.0), (8, 0, -1.3)],
    18: [(48, 1.5, 0), (60, 1.2, 0), (49, 0.6, 0), (59, 0.6, 0)],
    20: [(48, -1.5, 0.5), (60, -1.2, 0.4), (49, -0.5, 0.2), (59, -0.5, 0.3)],
    24: [
        (49, 0, 0.6), (50, 0, 0.8), (51, 0, 0.8), (61, 0, 0.5), (62, 0, 0.5),
        (59, 0, -0.6), (58, 0, -0.8), (57, 0, -0.8), (67, 0, -0.5), (66, 0, -0.5),
    ],
    25: [(66, 0, 1.2), (67, 0, 1.0), (57, 0, 1.0), (58, 0, 1.0), (59, 0, 0.7), (61, 0, -0.2),
         (62, 0, -0.2)],
    26: [(5, 0, 0.4), (6, 0, 0.8), (7, 0, 1.2), (8, 0, 1.5), (57, 0, 1.3), (58, 0, 1.2),
         (59, 0, 0.8), (66, 0, 1.3), (67, 0, 1.1)],
}  # fmt: skip
EYE_CLOSING_AUS = (43, 45)  # eyes closed / blink: drawn as eyelid closure
SUPPORTED_AUS = tuple(sorted(_AU_RIGHT)) + EYE_CLOSING_AUS

_AU_TOKEN = re.compile(r"^\s*(ref\()?([LRAB]?)(\d+)([A-E]?)\)?\s*$")


def _side_fields() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per AU: (right-half field, left-half field), each (68, 2); midline points split 50/50."""
    fields = {}
    mid = set(MIDLINE)
    for au, entries in _AU_RIGHT.items():
        right = np.zeros((N_POINTS, 2))
        left = np.zeros((N_POINTS, 2))
        for i, dx, dy in entries:
            if i in mid:
                right[i] += (0.5 * dx, 0.5 * dy)
                left[i] += (-0.5 * dx, 0.5 * dy)
            else:
                right[i] += (dx, dy)
                left[MIRROR[i]] += (-dx, dy)
        fields[au] = (right, left)
    return fields


_FIELDS = _side_fields()


@dataclass(frozen=True)
class AUTerm:
    """One parsed AU token: the AU number and which side of the face moves."""

    au: int
    side: str  # "both", "R" (subject's right = image left) or "L"


def parse_aus(text: str) -> list[AUTerm]:
    """Parse an AU string as written in the annotation (`4+L10`, `R1+R2`, `12A`, `?`, ``).

    Unknown tokens and AUs without a motion model are skipped: they only mean "no motion here".
    """
    terms = []
    for token in str(text).split("+"):
        m = _AU_TOKEN.match(token)
        if not m:
            continue
        side = m.group(2) if m.group(2) in ("L", "R") else "both"
        terms.append(AUTerm(int(m.group(3)), side))
    return terms


def au_field(terms: list[AUTerm]) -> tuple[np.ndarray, float]:
    """Summed displacement field (68, 2) at full activation, pixels at 128 px; and eye closure."""
    field = np.zeros((N_POINTS, 2))
    closure = 0.0
    for t in terms:
        if t.au in EYE_CLOSING_AUS:
            closure = max(closure, 0.85)
            continue
        if t.au not in _FIELDS:
            continue
        right, left = _FIELDS[t.au]
        if t.side in ("both", "R"):
            field += right
        if t.side in ("both", "L"):
            field += left
    return field, closure


def close_eyes(shape: np.ndarray, closure: float | np.ndarray) -> np.ndarray:
    """Move upper lids towards the lower lids by `closure` (0 open .. 1 shut); works on (68, 2)."""
    out = shape.copy()
    c = np.asarray(closure, dtype=float)
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):
        gap = shape[..., low, 1] - shape[..., up, 1]
        out[..., up, 1] += 0.9 * c * gap
        out[..., low, 1] -= 0.08 * c * gap
    return out


def bump(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Smooth 0 → 1 → 0 activation over frame indices 0..n-1 peaking at `apex`."""
    t = np.arange(n, dtype=float)
    out = np.zeros(n)
    if apex > onset:
        rise = (t >= onset) & (t <= apex)
        out[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / (apex - onset))
    if offset > apex:
        fall = (t >= apex) & (t <= offset)
        out[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex))
    out[int(apex)] = 1.0
    return out
