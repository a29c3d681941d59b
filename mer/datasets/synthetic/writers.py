"""Byte-for-byte reproducible writers: image sequences, mp4, xlsx workbooks, csv, landmarks.

Same inputs give the same bytes on the same library versions: PIL JPEG/BMP with fixed settings,
x264 single-threaded, and xlsx written through openpyxl and re-zipped with fixed entry times and
fixed document properties (openpyxl stamps the save time into both otherwise).
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

JPEG_QUALITY = 95
VIDEO_FPS = 30
VIDEO_CRF = 14  # near-lossless: the 1-3 px micro-movements must survive compression
FIXED_TIME = dt.datetime(2014, 5, 8, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Single-threaded and without macroblock-tree rate control: with mbtree, x264's lookahead gave
# different bytes from run to run for some small frame sizes (e.g. 86x64).
_X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"


def write_frames(folder: Path, frames: np.ndarray, names: Sequence[str], fmt: str) -> None:
    """One image per frame; `fmt` is "JPEG" or "BMP"; (n, H, W) frames are saved as 8-bit grey."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names, strict=True):
        img = Image.fromarray(frame, mode="L" if frame.ndim == 2 else "RGB")
        if fmt == "JPEG":
            img.save(folder / name, format="JPEG", quality=JPEG_QUALITY)
        else:
            img.save(folder / name, format=fmt)


def write_mp4(path: Path, frames: np.ndarray, fps: int = VIDEO_FPS) -> None:
    """H.264 mp4 (yuv420p) that decord and PyAV read; frame count preserved exactly."""
    import av  # lazy: PyAV takes ~0.1 s to import; only the video layouts need it

    n, h, w = frames.shape[:3]
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(VIDEO_CRF),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": _X264_PARAMS,
        }
        for frame in frames:
            vf = _yuv_frame(av, rgb_to_yuv420p(frame), w, h)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _yuv_frame(av, planes: tuple[np.ndarray, np.ndarray, np.ndarray], w: int, h: int):
    """A yuv420p VideoFrame with zeroed row padding (nothing uninitialised reaches x264)."""
    vf = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(vf.planes, planes, strict=True):
        buf = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
        buf[:, : data.shape[1]] = data
        plane.update(buf)
    return vf


def rgb_to_yuv420p(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range Y, U, V planes (U, V at half resolution), uint8.

    Done here rather than by swscale so that the encoder input is the same on every call.
    """
    rgb = frame.astype(np.float32)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def u8(c: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)

    return u8(y), u8(sub(u)), u8(sub(v))


def write_landmarks(path: Path, landmarks: np.ndarray) -> None:
    """float32 (n_frames, 68, 2), (x, y) pixels, frames in sorted frame-number order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(landmarks, dtype=np.float32))


Cell = str | int | float | None


class Sheet:
    """Rows of one worksheet, plus the columns whose cells are text-formatted (`@`)."""

    def __init__(
        self, title: str, rows: Iterable[Sequence[Cell]] = (), text_columns: Sequence[int] = ()
    ) -> None:
        self.title = title
        self.rows = [list(r) for r in rows]
        self.text_columns = tuple(text_columns)


def write_xlsx(path: Path, sheets: Sequence[Sheet]) -> None:
    """A workbook with the given sheets, reproducible to the byte."""
    # lazy: openpyxl takes ~0.5 s to import; loading a config imports these writers
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    wb.remove(wb.active)
    for spec in sheets:
        ws = wb.create_sheet(spec.title)
        for r, row in enumerate(spec.rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = ws.cell(row=r, column=c, value=value)
                if c - 1 in spec.text_columns:
                    cell.number_format = "@"
    wb.properties.creator = "mer synthetic"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    wb.properties.lastModifiedBy = "mer synthetic"
    raw = io.BytesIO()
    archive = zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    ExcelWriter(wb, archive).save()  # closes the archive; unlike Workbook.save keeps `modified`
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_rezip(raw.getvalue()))


def _rezip(data: bytes) -> bytes:
    """Same entries in the same order with fixed timestamps and permissions."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def write_csv(
    path: Path,
    rows: Iterable[Sequence[Cell]],
    header: Sequence[str] | None = None,
    newline: str = "\n",
) -> None:
    """Plain comma-separated text (values never contain commas here), fixed line ending."""
    lines = [",".join(header)] if header else []
    lines += [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))


def au_cell(aus: str) -> str | int:
    """An AU cell as the real workbooks hold it: single numeric AUs are numbers, the rest text."""
    return int(aus) if aus.isdigit() else aus
