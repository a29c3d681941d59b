"""Real face media for the face pipeline's checks: where it is, and clips cut from it into the
dataset layouts mer reads (`videos` and CASME II), as a new user's data would be.

The media (`../shared/media/` beside the project root, or `$MER_MEDIA_DIR`) holds a 72-frame
640x360 video of one man talking and smiling (`single_face.mp4`), a video without a face
(`no_face.mp4`, animated titles over sky) and two photos (`single_face.jpg`, `multi_face.jpg`).
Clips are written with the repository's own writers (H.264 mp4, JPEG frames, xlsx sheets), so
they decode exactly as a user's files would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mer.datasets.media import read_clip, read_image
from mer.datasets.synthetic.writers import Sheet, write_frames, write_mp4, write_xlsx

REPO = Path(__file__).resolve().parents[2]
ENV = "MER_MEDIA_DIR"
FILES = ("single_face.mp4", "no_face.mp4", "single_face.jpg", "multi_face.jpg")
HEIGHT, WIDTH = 360, 640  # the talking-face video's frame size; other media is fitted to it


def media_dir() -> Path | None:
    """The real media folder, or None where this checkout has none (a user's)."""
    env = os.environ.get(ENV)
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "media"]:
        if all((cand / f).is_file() for f in FILES):
            return cand
    return None


MISSING = f"real face media not available here (set {ENV} to a folder holding {', '.join(FILES)})"


def _fit(frames: np.ndarray) -> np.ndarray:
    """Frames resized to the talking-face video's 640x360."""
    if frames.shape[1:3] == (HEIGHT, WIDTH):
        return frames
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((WIDTH, HEIGHT), Image.BILINEAR)) for f in frames]
    )


@dataclass
class Media:
    """The decoded real media (RGB uint8, all 640x360)."""

    face: np.ndarray  # (72, 360, 640, 3) the talking face
    no_face: np.ndarray  # (95, 360, 640, 3) sky and titles
    photo: np.ndarray  # single_face.jpg (another face), as decoded

    @classmethod
    def load(cls, folder: Path) -> Media:
        return cls(
            face=_fit(read_clip(folder / "single_face.mp4")),
            no_face=_fit(read_clip(folder / "no_face.mp4")),
            photo=read_image(folder / "single_face.jpg"),
        )

    def with_intruder(
        self, frames: np.ndarray, scale: float = 0.5, span: slice = slice(None)
    ) -> np.ndarray:
        """`frames` with the photo's face pasted at the right edge in the frames of `span` (a
        second, confident face away from the subject, e.g. someone passing by)."""
        h, w = self.photo.shape[:2]
        small = np.asarray(
            Image.fromarray(self.photo).resize((int(w * scale), int(h * scale)), Image.BILINEAR)
        )
        out = frames.copy()
        sh, sw = small.shape[:2]
        out[span, HEIGHT - sh - 10 : HEIGHT - 10, WIDTH - sw - 10 : WIDTH - 10] = small
        return out

    @property
    def intruder_left(self) -> int:
        """Left edge of the pasted face (`with_intruder`, scale 0.5)."""
        return WIDTH - int(self.photo.shape[1] * 0.5) - 10

    def occluded(self, frames: np.ndarray, detector: object) -> np.ndarray:
        """`frames` with the lower third of the face box (dlib, per frame) painted black."""
        out = frames.copy()
        for f in out:
            rects, _, _ = detector.detector.run(np.ascontiguousarray(f), 0, 0.0)  # type: ignore[attr-defined]
            for r in list(rects)[:1]:
                y0 = r.top() + 2 * r.height() // 3
                f[max(y0, 0) : r.bottom() + 1, max(r.left(), 0) : r.right() + 1] = 0
        return out

    def still(self, n: int, index: int = 0, noise: float = 2.0, seed: int = 0) -> np.ndarray:
        """`n` copies of one frame of the talking face with fresh sensor noise each (a face that
        does not move at all: any motion in its crops comes from the landmarks)."""
        rng = np.random.default_rng(seed)
        base = self.face[index].astype(np.float32)
        noisy = base[None] + rng.normal(0.0, noise, size=(n, *base.shape))
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@dataclass
class Clip:
    """One clip of a layout: its frames and annotation."""

    name: str
    frames: np.ndarray
    subject: str = "sub01"
    emotion: str = "happiness"  # videos layout: the class folder is from it (megc3 classes)
    aus: str = "12"
    onset: int | None = None  # CASME II: frame numbers (from 1); default the whole clip
    apex: int | None = None
    offset: int | None = None
    extra: dict = field(default_factory=dict)


FOLDER = {"happiness": "positive", "surprise": "surprise", "disgust": "negative"}


def write_videos(out: Path, clips: list[Clip]) -> tuple[Path, Path]:
    """The original code's layout: `out/data/<class>/<name>.mp4` + `out/videos-coding.xlsx`.
    Returns (root, annotations)."""
    root = out / "data"
    rows: list[list] = [["Subject", "Filename", "Action Units", "Estimated Emotion"]]
    for c in clips:
        write_mp4(root / FOLDER[c.emotion] / f"{c.name}.mp4", c.frames)
        rows.append([c.subject, c.name, c.aus, c.emotion])
    sheet = out / "videos-coding.xlsx"
    write_xlsx(sheet, [Sheet("Sheet1", rows)])
    return root, sheet


def write_casme2(out: Path, clips: list[Clip]) -> tuple[Path, Path]:
    """CASME II RAW layout: `out/CASME2_RAW_selected/subNN/<name>/img<k>.jpg` (k from 1) +
    `out/CASME2-coding-20140508.xlsx`. Returns (root, annotations)."""
    root = out / "CASME2_RAW_selected"
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
              "Action Units", "Estimated Emotion"]  # fmt: skip
    rows: list[list] = [header]
    for c in clips:
        n = len(c.frames)
        names = [f"img{k}.jpg" for k in range(1, n + 1)]
        write_frames(root / c.subject / c.name, c.frames, names, "JPEG")
        onset = 1 if c.onset is None else c.onset
        offset = n if c.offset is None else c.offset
        apex = (onset + offset) // 2 if c.apex is None else c.apex
        rows.append([c.subject.removeprefix("sub"), c.name, None, onset, apex, offset, None,
                     c.aus, c.emotion])  # fmt: skip
    sheet = out / "CASME2-coding-20140508.xlsx"
    write_xlsx(sheet, [Sheet("Sheet1", rows, text_columns=(0,))])
    return root, sheet
