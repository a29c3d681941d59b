from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mer.datasets.media import (
    frame_count,
    frame_number,
    list_frames,
    open_clip,
    read_clip,
    to_grey,
)
from mer.errors import DataError


def _frame(value: int, h: int = 12, w: int = 16) -> np.ndarray:
    """A frame whose pixels encode its value (R), row (G) and column (B)."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = value
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = np.arange(w)[None, :]
    return img


def _write_png_clip(folder: Path, numbers: list[int], pattern: str = "img{}.png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(_frame(n)).save(folder / pattern.format(n))


def _write_video(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("img46.jpg", 46),  # CASME II
        ("006_05562.jpg", 5562),  # SAMM: the last run of digits, not the subject
        ("reg_image046176.bmp", 46176),  # SMIC
        ("1.jpg", 1),  # CAS(ME)^3
    ],
)
def test_frame_number_is_last_digit_run(name: str, number: int) -> None:
    assert frame_number(name) == number


def test_frame_number_without_digits_names_file() -> None:
    with pytest.raises(DataError, match="cover.jpg: frame file name has no frame number"):
        frame_number("cover.jpg")


def test_list_frames_sorts_numerically_and_ignores_non_images(tmp_path: Path) -> None:
    _write_png_clip(tmp_path, [10, 9, 100, 1])
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._img1.png").write_bytes(b"macOS resource fork")
    frames = list_frames(tmp_path)
    assert [n for n, _ in frames] == [1, 9, 10, 100]
    assert [p.name for _, p in frames] == ["img1.png", "img9.png", "img10.png", "img100.png"]


def test_list_frames_accepts_mixed_case_extensions(tmp_path: Path) -> None:
    for i, ext in enumerate([".JPG", ".jpeg", ".bmp", ".PNG"]):
        Image.fromarray(_frame(i)).save(tmp_path / f"f{i}{ext}")
    assert [n for n, _ in list_frames(tmp_path)] == [0, 1, 2, 3]


def test_duplicate_frame_numbers_are_an_error(tmp_path: Path) -> None:
    _write_png_clip(tmp_path, [1, 2])
    Image.fromarray(_frame(1)).save(tmp_path / "img001.png")
    with pytest.raises(DataError, match="same number 1"):
        list_frames(tmp_path)


def test_read_folder_exact_pixels_and_subset(tmp_path: Path) -> None:
    _write_png_clip(tmp_path, [3, 5, 7, 11])
    clip = read_clip(tmp_path)
    assert clip.shape == (4, 12, 16, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[:, 0, 0, 0], [3, 5, 7, 11])
    np.testing.assert_array_equal(clip[2], _frame(7))
    sub = read_clip(tmp_path, [11, 3, 11])
    np.testing.assert_array_equal(sub[:, 0, 0, 0], [11, 3, 11])
    assert frame_count(tmp_path) == 4


def test_read_samm_style_names_and_grey(tmp_path: Path) -> None:
    for n in (5562, 5563):
        Image.fromarray(np.full((6, 8), n % 256, dtype=np.uint8), mode="L").save(
            tmp_path / f"006_0{n}.jpg", quality=100
        )
    clip = read_clip(tmp_path)
    assert clip.shape == (2, 6, 8, 3)
    assert (clip[..., 0] == clip[..., 1]).all() and (clip[..., 1] == clip[..., 2]).all()
    assert abs(int(clip[0, 3, 3, 0]) - 5562 % 256) <= 2


def test_unknown_frame_number_names_clip(tmp_path: Path) -> None:
    _write_png_clip(tmp_path, [1, 2])
    with pytest.raises(DataError, match="no frame number 5"):
        read_clip(tmp_path, [1, 5])


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / f"img{n}.jpg"
        )
    bad = tmp_path / "img2.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    assert frame_count(tmp_path) == 2  # listing does not decode
    with pytest.raises(DataError, match=r"img2\.jpg: cannot read image"):
        read_clip(tmp_path)
    np.testing.assert_equal(read_clip(tmp_path, [1]).shape, (1, 64, 64, 3))


def test_frames_of_different_sizes_are_an_error(tmp_path: Path) -> None:
    _write_png_clip(tmp_path, [1])
    Image.fromarray(_frame(2, h=10)).save(tmp_path / "img2.png")
    with pytest.raises(DataError, match=r"img2\.png: frame size 16x10 differs from img1\.png"):
        read_clip(tmp_path)


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no frames")
    with pytest.raises(DataError, match="empty: no frames"):
        read_clip(tmp_path / "empty")
    with pytest.raises(DataError, match="missing: clip not found"):
        read_clip(tmp_path / "missing")


def test_single_image_is_not_a_clip(tmp_path: Path) -> None:
    Image.fromarray(_frame(1)).save(tmp_path / "img1.png")
    with pytest.raises(DataError, match="single image"):
        read_clip(tmp_path / "img1.png")


@pytest.mark.parametrize("backend", ["decord", "av"])
def test_video_read_all_subset_and_count(tmp_path: Path, backend: str) -> None:
    frames = np.stack([np.full((32, 64, 3), 20 + 25 * i, dtype=np.uint8) for i in range(8)])
    path = tmp_path / "clip.mp4"
    _write_video(path, frames)
    assert frame_count(path, backend=backend) == 8
    clip = read_clip(path, backend=backend)
    assert clip.shape == (8, 32, 64, 3) and clip.dtype == np.uint8
    assert np.abs(clip.astype(int) - frames).max() <= 3  # lossy codec, flat frames
    sub = read_clip(path, [7, 0, 7], backend=backend)  # video frame numbers are 0-based
    np.testing.assert_array_equal(sub, clip[[7, 0, 7]])
    source = open_clip(path, backend=backend)
    assert source.is_video and source.numbers == list(range(8))
    np.testing.assert_array_equal(source.read_grey(), to_grey(clip))


def test_decord_and_pyav_decode_the_same_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 48, 86, 3), dtype=np.uint8)  # synthetic-layout width
    path = tmp_path / "noise.mp4"
    _write_video(path, frames)
    np.testing.assert_array_equal(read_clip(path, backend="decord"), read_clip(path, backend="av"))


def test_decord_failure_names_file_and_suggests_pyav(tmp_path: Path) -> None:
    path = tmp_path / "narrow.mp4"
    _write_video(path, np.zeros((4, 48, 16, 3), dtype=np.uint8))  # decord 0.6 rejects width 16
    with pytest.raises(DataError, match=r"narrow\.mp4: decord cannot .*video_backend: av"):
        read_clip(path, backend="decord")
    assert read_clip(path, backend="av").shape == (4, 48, 16, 3)


@pytest.mark.parametrize("backend", ["decord", "av"])
def test_garbage_and_truncated_video_name_the_file(tmp_path: Path, backend: str) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(DataError, match=r"garbage\.mp4: .*(cannot read|decord cannot)"):
        read_clip(garbage, backend=backend)
    good = tmp_path / "good.mp4"
    _write_video(good, np.zeros((4, 32, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.mp4"):
        read_clip(cut, backend=backend)


def test_to_grey_is_bt601_fixed_point() -> None:
    rgb = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30], [1, 2, 3]]],
        dtype=np.uint8,
    )
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    expected = (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16
    np.testing.assert_array_equal(to_grey(rgb), expected)
    np.testing.assert_array_equal(to_grey(rgb)[0, :4], [76, 150, 29, 255])
    stacked = np.stack([rgb, rgb[:, ::-1]])  # (2, 1, 6, 3): leading axes kept
    np.testing.assert_array_equal(to_grey(stacked)[1], expected[:, ::-1])
    assert to_grey(rgb[..., 0]).shape == (1, 6)  # already grey: unchanged
