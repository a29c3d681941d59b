"""Branch inputs: the whole frame (branch A) and face-region crops (branch B).

Region policies (`data.regions.policy`):

- `au_oracle` (the original, MODEL.md §6): one region per clip from its annotated AUs (kept when
  in `data.regions.au_codes`); region priority, first match wins: any of {4, 5, 7, 43} → eyes,
  {10, 12, 14, 15, 17} → mouth, {1, 2} → eyebrows, {6, 9} → cheeks, otherwise the whole face.
  It reads ground-truth annotation also for test subjects and the region correlates with the
  class: an ORACLE input, flagged as such everywhere.
- `all`: label-free 2×2 mosaic of four landmark regions: top-left eyebrows, top-right eyes,
  bottom-left cheeks, bottom-right mouth; each crop resized to its cell (size//2, rounded up for
  the second row/column when size is odd).
- `fixed`: label- and landmark-free 2-row mosaic of fixed fractions of the frame (meant for
  face-cropped frames): top half = upper-face band (rows 15-50 %, columns 10-90 %), bottom half =
  mouth band (rows 55-90 %, columns 25-75 %); see FIXED_BOXES.
- `none`: no region input; branch B sees the global frames.

Region boxes (iBUG 0-based landmark indices as in the original code; 1/15 are jaw points at eye
height, 3/13 at nose-tip height, 5/11 below the mouth, 19/24 the brow tops, 17/26 the brow ends,
29 the nose) are computed per selected frame from that frame's landmarks. Box = the smallest
pixel box holding the landmarks (floor of the minimum, ceil of the maximum, inclusive), widened
by `margin` × its width/height on each side, clamped to the image (at least 1 pixel). With
`keep_aspect` the crop is zero-padded (centred) to a square before resizing; otherwise it is
stretched. Every resize is PIL bilinear to (size, size): deterministic.

Which landmarks cut the boxes is the registration's choice (mer.data.faces.registration,
`data.faces.boxes`): each frame's own (`per_frame`, the original) or one set per clip
(`per_clip`: every frame gets the same boxes).

Branch A (`data.faces.global`): the whole frame resized without keeping the aspect ratio, like
the original (`frame`), or the face (`face`): the square box around all 68 landmarks, `margin`
× its larger side added on each side (`face_box`), zero-padded where it leaves the frame, then
resized (aspect kept). With a face crop, the `fixed` policy's bands are fractions of that face
box (they were meant for face-cropped frames), and the `none` policy's branch B is the face crop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from mer.datasets.facs import AU_REGIONS

REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "eyes": (19, 24, 15, 1),
    "mouth": (3, 5, 11, 13),
    "eyebrows": (17, 19, 24, 26),
    "cheeks": (1, 29, 15, 3, 13),
    "face": tuple(range(68)),
}
#: `all` policy mosaic, row by row.
MOSAIC: tuple[tuple[str, str], ...] = (("eyebrows", "eyes"), ("cheeks", "mouth"))
#: `fixed` policy: (top, bottom, left, right) as fractions of the frame, stacked top to bottom.
FIXED_BOXES: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("upper", (0.15, 0.50, 0.10, 0.90)),
    ("mouth", (0.55, 0.90, 0.25, 0.75)),
)
POLICIES = ("au_oracle", "all", "fixed", "none")
#: Policies that need landmarks.
NEEDS_LANDMARKS = frozenset({"au_oracle", "all"})
#: Value of the sample table's `region` column per label-free policy.
POLICY_REGION = {"all": "all", "fixed": "fixed", "none": "global"}
#: `region` value when no face was found and the whole frame stands in (no_face: whole_frame).
WHOLE_FRAME = "frame"

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: half-open pixel box


def oracle_region(aus: Iterable[int] | None, au_codes: Iterable[int]) -> str:
    """The au_oracle region of a clip from its annotated AUs."""
    kept = {int(a) for a in (aus or [])} & {int(c) for c in au_codes}
    for region, codes in AU_REGIONS:
        if kept & codes:
            return region
    return "face"


def landmark_box(points: np.ndarray, width: int, height: int, margin: float = 0.0) -> Box:
    """Pixel box (x0, y0, x1, y1), half-open, around `points` (K, 2) (x, y); see module doc."""
    xs, ys = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max(), ys.min(), ys.max()
    dx, dy = margin * (x_hi - x_lo), margin * (y_hi - y_lo)
    return clamp_box(
        math.floor(x_lo - dx), math.floor(y_lo - dy),
        math.ceil(x_hi + dx) + 1, math.ceil(y_hi + dy) + 1,
        width, height,
    )  # fmt: skip


def clamp_box(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> Box:
    """Clamp a half-open box to a width × height image, keeping at least one pixel."""
    x0 = min(max(x0, 0), width - 1)
    y0 = min(max(y0, 0), height - 1)
    x1 = min(max(x1, x0 + 1), width)
    y1 = min(max(y1, y0 + 1), height)
    return x0, y0, x1, y1


def fraction_box(fractions: tuple[float, float, float, float], width: int, height: int) -> Box:
    """(top, bottom, left, right) fractions → pixel box (rounded to the nearest pixel)."""
    top, bottom, left, right = fractions
    return clamp_box(
        round(left * width), round(top * height), round(right * width), round(bottom * height),
        width, height,
    )  # fmt: skip


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 → (height, width, 3) uint8, PIL bilinear (identity when sizes match)."""
    if img.shape[0] == height and img.shape[1] == width:
        return np.ascontiguousarray(img)
    out = Image.fromarray(np.ascontiguousarray(img)).resize((width, height), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def pad_square(img: np.ndarray) -> np.ndarray:
    """Zero-pad (H, W, 3) to a centred square (extra pixel, if odd, after)."""
    h, w = img.shape[:2]
    side = max(h, w)
    if h == w:
        return img
    out = np.zeros((side, side, img.shape[2]), dtype=img.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = img
    return out


def crop(
    frame: np.ndarray, box: Box, height: int, width: int, *, keep_aspect: bool = False
) -> np.ndarray:
    """Crop `box` from `frame` and resize it to (height, width)."""
    x0, y0, x1, y1 = box
    patch = frame[y0:y1, x0:x1]
    if keep_aspect:
        patch = pad_square(patch)
    return resize(patch, height, width)


def global_frames(frames: np.ndarray | Sequence[np.ndarray], size: int) -> np.ndarray:
    """Branch A: whole frames (T, H, W, 3) → (T, size, size, 3), aspect not kept."""
    return np.stack([resize(f, size, size) for f in frames])


def face_box(points: np.ndarray, margin: float) -> Box:
    """Square half-open box (x0, y0, x1, y1) around all `points` (68, 2): the landmarks' pixel
    box (as `landmark_box`) centred in a square of side max(width, height) × (1 + 2·margin).
    Not clamped: it may reach outside the frame (`crop_padded` pads)."""
    xs, ys = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    x_lo, x_hi = math.floor(xs.min()), math.ceil(xs.max()) + 1
    y_lo, y_hi = math.floor(ys.min()), math.ceil(ys.max()) + 1
    side = max(1, math.ceil(max(x_hi - x_lo, y_hi - y_lo) * (1.0 + 2.0 * margin)))
    x0 = math.floor((x_lo + x_hi - side) / 2)
    y0 = math.floor((y_lo + y_hi - side) / 2)
    return x0, y0, x0 + side, y0 + side


def crop_padded(frame: np.ndarray, box: Box) -> np.ndarray:
    """`box` of `frame`, zero where it reaches outside the frame (nothing is shifted)."""
    x0, y0, x1, y1 = box
    height, width = frame.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, frame.shape[2]), dtype=frame.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


def face_frames(frames: np.ndarray, landmarks: np.ndarray, margin: float) -> list[np.ndarray]:
    """Each frame's face crop (`face_box` of its landmarks, padded), at source resolution."""
    return [crop_padded(f, face_box(p, margin)) for f, p in zip(frames, landmarks, strict=True)]


def _cells(size: int, parts: int) -> list[int]:
    base = size // parts
    return [base] * (parts - 1) + [size - base * (parts - 1)]


def region_frames(
    frames: np.ndarray | Sequence[np.ndarray],
    landmarks: np.ndarray | None,
    policy: str,
    size: int,
    *,
    region: str = "face",
    margin: float = 0.0,
    keep_aspect: bool = False,
) -> np.ndarray:
    """Branch B for one clip: (T, H, W, 3) frames → (T, size, size, 3).

    `landmarks` (T, 68, 2) are needed by `au_oracle` (crop of `region`) and `all`; None there
    means no face was found: the whole frame stands in (the same as branch A). `fixed` takes
    the frames as given (whole frames, or the face crops of `face_frames`, sizes may differ).
    """
    if policy not in ("au_oracle", "all", "fixed"):
        raise ValueError(f"region_frames: policy {policy!r} has no region input")
    if policy in NEEDS_LANDMARKS and landmarks is None:
        return global_frames(frames, size)
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):
        height, width = frame.shape[:2]
        if policy == "au_oracle":
            assert landmarks is not None
            box = landmark_box(landmarks[t][list(REGION_LANDMARKS[region])], width, height, margin)
            out[t] = crop(frame, box, size, size, keep_aspect=keep_aspect)
        elif policy == "all":
            assert landmarks is not None
            out[t] = _mosaic(frame, landmarks[t], size, margin, keep_aspect)
        else:
            rows = _cells(size, len(FIXED_BOXES))
            parts = [
                crop(frame, fraction_box(fr, width, height), h, size)
                for (_, fr), h in zip(FIXED_BOXES, rows, strict=True)
            ]
            out[t] = np.concatenate(parts, axis=0)
    return out


def _mosaic(
    frame: np.ndarray, points: np.ndarray, size: int, margin: float, keep_aspect: bool
) -> np.ndarray:
    height, width = frame.shape[:2]
    rows, cols = _cells(size, len(MOSAIC)), _cells(size, len(MOSAIC[0]))
    out_rows = []
    for names, h in zip(MOSAIC, rows, strict=True):
        cells = []
        for name, w in zip(names, cols, strict=True):
            box = landmark_box(points[list(REGION_LANDMARKS[name])], width, height, margin)
            cells.append(crop(frame, box, h, w, keep_aspect=keep_aspect))
        out_rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(out_rows, axis=0)
