"""Decode-check one image before it is stored: size, pixel count (decompression bombs), corruption."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


class ImageRejected(ValueError):
    """The image cannot be stored; the message says why, for the row's error report."""


@dataclass(frozen=True)
class ImageFacts:
    """What the Image table records of a checked image."""

    sha256: str
    width: int
    height: int
    format: str  # file extension, lower case
    size_bytes: int


def image_data_check(data: bytes, *, max_bytes: int, max_pixels: int, sha256: str | None = None) -> ImageFacts:
    """Decode the bytes fully; return their facts or raise ImageRejected."""
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    if not data:
        raise ImageRejected("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as img:
                width, height = img.size
                _check_pixels(width, height, max_pixels)
                if img.format not in ALLOWED_FORMATS:
                    raise ImageRejected(f"unsupported image format {img.format}; known: {', '.join(ALLOWED_FORMATS)}")
                fmt = ALLOWED_FORMATS[img.format]
                img.load()  # decodes fully: truncated or corrupt data fails here, not in a trainer later
    except ImageRejected:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except Exception as exc:  # PIL raises many types for bad data: all mean the same to the user
        raise ImageRejected(f"corrupt or truncated image: {exc}") from None
    return ImageFacts(sha256 or hashlib.sha256(data).hexdigest(), width, height, fmt, len(data))


def image_limits_check(facts: ImageFacts, *, max_bytes: int, max_pixels: int) -> None:
    """The limits of `image_data_check`, applied to an image that passed it when first stored.

    Its bytes hash to a stored image's sha256, so they are the bytes that were decoded then; only the
    limits may have been lowered since.
    """
    if facts.size_bytes > max_bytes:
        raise ImageRejected(f"image is {facts.size_bytes:,} bytes, over the {max_bytes:,}-byte limit")
    _check_pixels(facts.width, facts.height, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,}-pixel "
            "limit (possible decompression bomb)"
        )


def image_file_read(path: Path | None, max_bytes: int) -> bytes:
    if path is None:
        raise ImageRejected("image has neither bytes nor a path")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageRejected(f"image file not found: {path}") from None
    if size > max_bytes:
        raise ImageRejected(f"image is {size:,} bytes, over the {max_bytes:,}-byte limit")
    return path.read_bytes()
