"""Decoding untrusted JPEG/PNG bytes into RGB frames, with checks made before decoding."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import simplejpeg

# 50 megapixels covers any camera still; larger uploads are refused before any pixel is decoded.
MAX_IMAGE_PIXELS = 50_000_000

_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}) | frozenset(
    {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# Markers without a length field.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_SOS = 0xDA
_JPEG_EOI = b"\xff\xd9"


class ImageError(ValueError):
    """The bytes are not a complete JPEG or PNG image within the pixel limit."""


def load_image_rgb(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> npt.NDArray[np.uint8]:
    """Decode JPEG or PNG bytes into a contiguous (height, width, 3) uint8 RGB array.

    The dimensions are read from the header and checked against ``max_pixels`` before
    decoding, so an image bomb never allocates its pixels. Truncated files are refused
    here too, since some OpenCV versions decode a truncated JPEG with only a warning.
    """
    width, height = image_dimensions(data)
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} ({width * height} pixels), "
            f"above the limit of {max_pixels} pixels"
        )
    if data.startswith(_JPEG_SIGNATURE):
        rgb = _decode_jpeg_strictly(data)
    else:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ImageError("image data is corrupt: it could not be decoded")
        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    if rgb.shape[0] * rgb.shape[1] > max_pixels:  # a header that lied about its size
        raise ImageError(f"decoded image is above the limit of {max_pixels} pixels")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _decode_jpeg_strictly(data: bytes) -> npt.NDArray[np.uint8]:
    """libjpeg-turbo's decode with its recoverable errors as errors: OpenCV fills the
    missing rows of a truncated scan with grey (a file cut short, with an end-of-image
    marker appended, decodes without complaint)."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        if colorspace in ("CMYK", "YCCK"):
            # libjpeg-turbo gives these as CMYK only: checked here, converted by OpenCV.
            simplejpeg.decode_jpeg(data, colorspace="CMYK", strict=True)
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError("OpenCV could not decode it")
            return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        raise ImageError(f"JPEG data is corrupt or truncated: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)


def image_dimensions(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a JPEG or PNG header; raise ImageError otherwise."""
    if data.startswith(_JPEG_SIGNATURE):
        width, height = _jpeg_dimensions(data)
    elif data.startswith(_PNG_SIGNATURE):
        width, height = _png_dimensions(data)
    else:
        raise ImageError("not a JPEG or PNG image")
    if width <= 0 or height <= 0:
        raise ImageError(f"image header gives invalid dimensions {width}x{height}")
    return width, height


def _png_dimensions(data: bytes) -> tuple[int, int]:
    # The IHDR chunk must come first; a file without its IEND chunk is truncated.
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("truncated or corrupt PNG: no IHDR header")
    if data.rfind(b"IEND", 24) < 0:
        raise ImageError("truncated PNG: no IEND chunk")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    # Walk the marker segments up to the first scan. Segment lengths let the walk skip
    # embedded EXIF thumbnails, which are complete JPEGs with their own markers.
    size: tuple[int, int] | None = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:  # libjpeg skips stray bytes between segments; so does this walk
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise ImageError("corrupt JPEG: bad segment length")
        if marker in _JPEG_SOF_MARKERS and pos + 7 <= len(data):
            height = int.from_bytes(data[pos + 3 : pos + 5], "big")
            width = int.from_bytes(data[pos + 5 : pos + 7], "big")
            size = (width, height)
        if marker == _JPEG_SOS:
            if size is None:
                raise ImageError("corrupt JPEG: no frame header before the scan")
            # Entropy-coded data never holds FF D9 (an FF there is stuffed as FF 00), so
            # an end-of-image marker after the scan header means the file is complete.
            if data.find(_JPEG_EOI, pos + length) < 0:
                raise ImageError("truncated JPEG: no end-of-image marker")
            return size
        pos += length
    raise ImageError("truncated JPEG: the image data is missing")
