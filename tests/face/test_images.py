"""load_image_rgb: decodes JPEG and PNG to RGB, refuses anything else before decoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.images import (
    ImageError,
    image_dimensions,
    load_image_rgb,
)


def encode(extension: str, bgr: npt.NDArray[np.uint8]) -> bytes:
    ok, buffer = cv2.imencode(extension, bgr)
    assert ok
    return buffer.tobytes()


def red_square_bgr(size: int = 64) -> npt.NDArray[np.uint8]:
    bgr = np.zeros((size, size, 3), dtype=np.uint8)
    bgr[:, :, 2] = 255
    return bgr


def noise_bgr(height: int, width: int) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum)


def png_claiming(width: int, height: int, pixel_data: bytes = b"") -> bytes:
    """A PNG whose header claims width x height, with whatever pixel data is given."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(pixel_data))
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is rewritten to claim width x height."""
    data = bytearray(encode(".jpg", noise_bgr(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_decodes_to_rgb(extension: str) -> None:
    rgb = load_image_rgb(encode(extension, red_square_bgr()))
    assert rgb.shape == (64, 64, 3)
    assert rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous
    assert rgb[..., 0].min() > 240  # red comes first
    assert rgb[..., 2].max() < 15


def test_fixture_photo_decodes_like_opencv_reads_it(fixtures_dir: Path) -> None:
    path = fixtures_dir / "faces" / "probe" / "two_people.jpg"
    bgr = cv2.imread(str(path))
    assert bgr is not None
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(load_image_rgb(path.read_bytes()), expected)


def test_dimensions_come_from_the_header() -> None:
    assert image_dimensions(encode(".png", noise_bgr(30, 50))) == (50, 30)
    assert image_dimensions(encode(".jpg", noise_bgr(30, 50))) == (50, 30)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    ],
    ids=["empty", "text", "gif", "random"],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(ImageError, match="not a JPEG or PNG"):
        load_image_rgb(data)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_jpeg_is_refused(keep: float) -> None:
    data = encode(".jpg", noise_bgr(200, 300))
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image_rgb(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_jpeg_with_an_end_marker_appended_is_refused(keep: float) -> None:
    # The end marker makes the header walk see a complete file; the full decode does not.
    data = encode(".jpg", noise_bgr(200, 300))
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image_rgb(data[: int(len(data) * keep)] + b"\xff\xd9")


def test_cmyk_jpeg_decodes() -> None:
    from PIL import Image  # scikit-image's dependency: the one CMYK encoder at hand

    buffer = io.BytesIO()
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(buffer, "JPEG", quality=95)
    rgb = load_image_rgb(buffer.getvalue())
    assert rgb.shape == (24, 32, 3)
    assert rgb[12, 16, 0] > 200 and rgb[12, 16, 1] < 60  # red


def test_jpeg_cut_inside_its_header_is_refused() -> None:
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image_rgb(encode(".jpg", noise_bgr(20, 20))[:40])


def test_truncated_png_is_refused() -> None:
    data = encode(".png", noise_bgr(200, 300))
    with pytest.raises(ImageError, match="truncated PNG"):
        load_image_rgb(data[: len(data) // 2])


def test_complete_png_with_corrupt_pixels_is_refused() -> None:
    with pytest.raises(ImageError, match="could not be decoded"):
        load_image_rgb(png_claiming(20, 20, pixel_data=b"\x00" * 10))


@pytest.mark.parametrize(
    "data",
    [png_claiming(100_000, 100_000), jpeg_with_size(60_000, 60_000)],
    ids=["png", "jpeg"],
)
def test_huge_dimensions_are_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(ImageError, match=r"60000x60000|100000x100000"):
        load_image_rgb(data)


def test_pixel_limit_is_configurable() -> None:
    data = encode(".png", noise_bgr(100, 100))
    assert load_image_rgb(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="above the limit of 9999 pixels"):
        load_image_rgb(data, max_pixels=9_999)


def test_zero_dimensions_are_refused() -> None:
    with pytest.raises(ImageError, match="invalid dimensions"):
        load_image_rgb(png_claiming(0, 10))


def test_image_error_is_a_value_error() -> None:
    assert issubclass(ImageError, ValueError)
