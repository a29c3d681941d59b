"""Read clips as uint8 RGB arrays: video files (PyAV) and image-sequence folders.

A clip is either a video file or a folder of frames named with a frame number (CASME II
`img46.jpg`, SAMM `006_05562.jpg`, SMIC `reg_image046176.bmp`, CAS(ME)^3 `1.jpg`). Frame numbers
are the file name's last run of digits and frames are ordered by that number, never lexically
(`img10` after `img9`). In a video, frame number = 0-based frame index.

`open_clip` lists a clip without decoding it, so a caller can choose which frames to decode and
decode each one once (`ClipSource.read(positions)`). Positions are 0-based indices into the
clip's time-ordered frame list; `ClipSource.numbers[pos]` is the frame number of a position.
Every decoding failure (truncated JPEG, garbage video, frames of different sizes, empty folder)
is a DataError naming the file.

Videos are decoded with decord by default (`data.video_backend: decord`: random access to the
wanted frames) or PyAV (`video_backend: av`: sequential decoding up to the last wanted frame).
decord 0.6 refuses some tiny frame widths (16, 24, 48, 72 px at height 48, for example); such a
failure is a DataError naming the file and suggesting the PyAV backend, never a silent fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mer.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".bmp", ".png", ".tif", ".tiff"})
_DIGITS = re.compile(r"\d+")


def frame_number(path: str | Path) -> int:
    """The last run of digits in a frame file's name (without extension)."""
    runs = _DIGITS.findall(Path(path).stem)
    if not runs:
        raise DataError(f"{path}: frame file name has no frame number (expected e.g. img46.jpg)")
    return int(runs[-1])


def list_frames(folder: str | Path) -> list[tuple[int, Path]]:
    """(frame number, file) of every image in `folder`, sorted by frame number.

    Files that are not images (jpg, jpeg, bmp, png, tif, tiff; any case) and hidden files
    (macOS `._img1.jpg`) are ignored, e.g. `Thumbs.db`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: clip folder not found")
    frames = [
        (frame_number(p), p)
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not frames:
        raise DataError(
            f"{folder}: no frames (expected image files {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    frames.sort(key=lambda item: (item[0], item[1].name))
    for (n1, p1), (n2, p2) in zip(frames, frames[1:], strict=False):
        if n1 == n2:
            raise DataError(f"{folder}: frames {p1.name} and {p2.name} have the same number {n1}")
    return frames


def _open_video(path: Path):
    """(container, stream) of the first video stream; DataError when the file is not a video."""
    # lazy: PyAV takes ~0.1 s to import and loading a config imports this module; only video
    # clips need it
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # av.error.FFmpegError, EOFError, OSError ...
        raise DataError(f"{path}: cannot read video ({_short(exc)})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _count_video_frames(path: Path) -> int:
    """Frames of a video, counted from its packets (demuxing only: no decoding)."""
    container, stream = _open_video(path)
    try:
        n = sum(1 for packet in container.demux(stream) if packet.size)
    except Exception as exc:
        raise DataError(f"{path}: cannot read video ({_short(exc)})") from None
    finally:
        container.close()
    if n == 0:
        raise DataError(f"{path}: video has no frames")
    return n


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _as_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return arr[..., :3]


def read_image(path: str | Path) -> np.ndarray:
    """One frame file as (H, W, 3) uint8 RGB; grey and palette images become 3 channels."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes fully: a truncated file fails here, not later
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for bad/truncated files
        raise DataError(f"{path}: cannot read image ({_short(exc)})") from None


@dataclass
class ClipSource:
    """A clip listed but not decoded: its frame numbers and where the frames are."""

    path: Path
    numbers: list[int]
    files: list[Path] | None = None  # image sequence; None for a video
    backend: str = "decord"  # video decoder: "decord" or "av"

    @property
    def is_video(self) -> bool:
        return self.files is None

    def __len__(self) -> int:
        return len(self.numbers)

    def positions_of(self, frame_numbers: Sequence[int]) -> np.ndarray:
        """Positions of the given frame numbers; DataError naming a number the clip lacks."""
        index = {n: i for i, n in enumerate(self.numbers)}
        out = []
        for n in frame_numbers:
            if int(n) not in index:
                raise DataError(
                    f"{self.path}: no frame number {n} (clip has {self.numbers[0]}.."
                    f"{self.numbers[-1]}, {len(self.numbers)} frames)"
                )
            out.append(index[int(n)])
        return np.asarray(out, dtype=np.int64)

    def read(self, positions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Decode the frames at `positions` (all when None) → (F, H, W, 3) uint8 RGB.

        Repeated positions are decoded once and copied.
        """
        pos = np.arange(len(self), dtype=np.int64) if positions is None else np.asarray(positions)
        pos = pos.astype(np.int64, copy=False).reshape(-1)
        if pos.size == 0:
            raise ValueError("read: no positions requested")
        if pos.min() < 0 or pos.max() >= len(self):
            raise IndexError(f"{self.path}: positions outside 0..{len(self) - 1}: {pos.tolist()}")
        unique, inverse = np.unique(pos, return_inverse=True)
        out: np.ndarray | None = None
        for i, img in enumerate(self._decode(unique)):
            if out is None:
                out = np.empty((len(unique), *img.shape), dtype=np.uint8)
            out[i] = img
        assert out is not None
        return out if np.array_equal(unique, pos) else out[inverse]

    def read_grey(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Frames at sorted unique `positions` (all when None) in grey (F, H, W) uint8
        (`to_grey`), one frame in RGB at a time in memory."""
        pos = np.arange(len(self), dtype=np.int64) if positions is None else np.asarray(positions)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"{self.path}: positions outside 0..{len(self) - 1}")
        out: np.ndarray | None = None
        for i, img in enumerate(self._decode(pos)):
            if out is None:
                out = np.empty((len(pos), *img.shape[:2]), dtype=np.uint8)
            out[i] = to_grey(img)
        assert out is not None
        return out

    def stream(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """RGB frames at sorted unique `positions`, one at a time, each decoded once (one pass
        over a video): for a caller that looks at every frame and keeps only some."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"{self.path}: positions outside 0..{len(self) - 1}")
        if pos.size and (np.diff(pos) <= 0).any():
            raise ValueError(f"{self.path}: stream needs sorted unique positions")
        return self._decode(pos)

    def _decode(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """Frames at sorted unique `positions`, in order, all of one size (else DataError).

        Image frames are size-checked per file in `_decode_images` (naming the odd file)."""
        if not self.is_video:
            yield from self._decode_images(positions)
            return
        shape = None
        for img in self._decode_video(positions):
            if shape is None:
                shape = img.shape
            elif img.shape != shape:
                raise DataError(
                    f"{self.path}: frames of different sizes in one clip ({shape[1]}x{shape[0]} "
                    f"and {img.shape[1]}x{img.shape[0]})"
                )
            yield img

    def _decode_images(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        assert self.files is not None
        shape = None
        for p in positions:
            img = read_image(self.files[p])
            if shape is None:
                shape = img.shape
            elif img.shape != shape:
                raise DataError(
                    f"{self.files[p]}: frame size {img.shape[1]}x{img.shape[0]} differs from "
                    f"{self.files[positions[0]].name} ({shape[1]}x{shape[0]}) in the same clip"
                )
            yield img

    def _decode_video(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        if self.backend == "decord":
            yield from _decode_decord(self.path, positions)
        else:
            yield from self._decode_av(positions)

    def _decode_av(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """Decode sequentially up to the last wanted position."""
        wanted = {int(p) for p in positions}
        last, pos = int(positions[-1]), -1
        container, stream = _open_video(self.path)
        try:
            frames = container.decode(stream)
            while pos < last:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except Exception as exc:
                    raise DataError(f"{self.path}: cannot decode video ({_short(exc)})") from None
                pos += 1
                if pos in wanted:
                    yield _as_rgb(frame.to_ndarray(format="rgb24"))
        finally:
            container.close()
        if pos < last:
            raise DataError(
                f"{self.path}: video ended after {pos + 1} frames, frame {last} was needed "
                f"({len(self)} packets)"
            )


VIDEO_BACKENDS = ("decord", "av")


def _decord_reader(path: Path):
    import decord  # lazy: decord takes ~0.25 s to import; only the decord video backend needs it

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # decord.DECORDError, RuntimeError
        raise DataError(
            f"{path}: decord cannot read this video ({_short(exc)}); if the file plays elsewhere, "
            "try data.video_backend: av"
        ) from None


def _decode_decord(path: Path, positions: np.ndarray) -> Iterator[np.ndarray]:
    """Random access to the wanted frames, a few at a time to bound memory."""
    reader = _decord_reader(path)
    n = len(reader)
    if int(positions[-1]) >= n:
        raise DataError(f"{path}: video has {n} frames, frame {int(positions[-1])} was needed")
    for start in range(0, len(positions), 32):
        chunk = [int(p) for p in positions[start : start + 32]]
        try:
            batch = reader.get_batch(chunk).asnumpy()
        except Exception as exc:
            raise DataError(
                f"{path}: decord cannot decode frames {chunk[0]}..{chunk[-1]} ({_short(exc)}); "
                "try data.video_backend: av"
            ) from None
        for img in batch:
            yield _as_rgb(img)


def open_clip(path: str | Path, *, backend: str = "decord") -> ClipSource:
    """List a clip (folder of frames or video file) without decoding its frames."""
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"video backend {backend!r}: expected one of {VIDEO_BACKENDS}")
    path = Path(path)
    if path.is_dir():
        frames = list_frames(path)
        return ClipSource(path, [n for n, _ in frames], [p for _, p in frames])
    if not path.exists():
        raise DataError(f"{path}: clip not found (expected a video file or a folder of frames)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise DataError(f"{path}: is a single image; a clip is a video file or a folder of frames")
    count = len(_decord_reader(path)) if backend == "decord" else _count_video_frames(path)
    if count == 0:
        raise DataError(f"{path}: video has no frames")
    return ClipSource(path, list(range(count)), None, backend)


def read_clip(
    path: str | Path, frame_numbers: Sequence[int] | None = None, *, backend: str = "decord"
) -> np.ndarray:
    """Decode a clip → (F, H, W, 3) uint8 RGB, all frames or the given frame numbers in order.

    Frame numbers are those in the file names for image folders and 0-based indices for videos.
    """
    clip = open_clip(path, backend=backend)
    return clip.read(None if frame_numbers is None else clip.positions_of(frame_numbers))


def frame_count(path: str | Path, *, backend: str = "decord") -> int:
    """Number of frames of a clip, without decoding."""
    return len(open_clip(path, backend=backend))


def to_grey(frames: np.ndarray) -> np.ndarray:
    """(…, H, W, 3) uint8 RGB → (…, H, W) uint8 grey: ITU-R 601 luma in PIL's fixed point,
    (R·19595 + G·38470 + B·7471 + 2^15) >> 16, exact and deterministic.

    Already-grey input (last axis not 3) is returned as is.
    """
    frames = np.asarray(frames)
    if frames.shape[-1] != 3:
        return frames.astype(np.uint8, copy=False)
    if frames.ndim < 3:
        raise ValueError(f"to_grey: expected (..., H, W, 3) frames, got {frames.shape}")
    flat = frames.reshape(-1, *frames.shape[-3:]).astype(np.uint8, copy=False)
    out = np.empty(flat.shape[:-1], dtype=np.uint8)
    for i, frame in enumerate(flat):  # PIL's C conversion, one frame at a time
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).convert("L"))
    return out.reshape(frames.shape[:-1])
