"""Photos in and out: decoding image files' bytes to uint8 RGB arrays, checking them cheaply, writing arrays.

IMAGE_SUFFIXES are the file names every listing of photos keeps (animate inputs, training data, calibration folders);
IMAGE_FORMATS the PIL formats those decode with.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class ImageDecodeError(ValueError):
    """The image ``name`` cannot be used, for ``reason`` (corrupt, not an image, too small, too large)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self):  # rebuilt from its fields when it crosses a process boundary (Ray workers)
        return type(self), (self.name, self.reason)


def decode_image(data: bytes, name: str, *, min_size: int = 16) -> np.ndarray:
    """Decode a JPEG/PNG/WebP/BMP/TIFF file's bytes into a uint8 (H, W, 3) RGB array.

    The EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB and
    transparent images are composited over white. Raises :class:`ImageDecodeError` naming ``name`` for data that is
    not an image (described, never quoted), corrupt or truncated data, images whose shorter side is below
    ``min_size`` px, and decompression bombs (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels). Truncated files are
    errors as long as ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` keeps its default, False.
    """
    with _opened(data, name, min_size) as image:
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))


def probe_image(data: bytes, name: str, *, min_size: int = 16) -> tuple[int, int]:
    """(width, height) from an image's header, with decode_image's checks except those that need the pixels
    (truncated data): cheap enough to check a whole data set before any work starts."""
    with _opened(data, name, min_size) as image:
        return image.size


@contextlib.contextmanager
def _opened(data: bytes, name: str, min_size: int):
    """The PIL image of `data`, its size checked; every failure, in the body too, as an ImageDecodeError."""
    if not data:
        raise ImageDecodeError(name, "empty file")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise ImageDecodeError(
                    name, f"decompression bomb: {width}x{height} exceeds {Image.MAX_IMAGE_PIXELS} pixels"
                )
            if min(width, height) < min_size:
                raise ImageDecodeError(name, f"image is {width}x{height}, smaller than {min_size} px")
            yield image
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as error:
        raise ImageDecodeError(name, f"{_what_it_is(data)}, not an image in a supported format "
                                     f"({', '.join(IMAGE_FORMATS)})") from error
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(name, f"decompression bomb: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(name, f"corrupt or truncated image data: {error}") from error


def _what_it_is(data: bytes) -> str:
    """A short description of data that is not a supported image (never the data itself, which may be private)."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            return f"a {other.format} image"
    except Exception:  # noqa: BLE001 - any failure just means PIL does not know it either
        pass
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < 4092:  # not merely a character cut at the end of the sample
            return f"binary data ({len(data)} bytes)"
    return f"text ({len(data)} bytes)"


def to_rgb(image: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of any PIL mode; transparency is composited over white."""
    if image.mode.startswith("I"):  # 16-bit grayscale (PNG/TIFF): rescale 0..65535 to 0..255 instead of clipping
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257.0
        return np.repeat(np.round(gray).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def write_image(uri: str | os.PathLike, array: np.ndarray) -> None:
    """Save a uint8 (H, W, 3) or (H, W) array atomically, locally or on S3, in the format of ``uri``'s extension."""
    suffix = Path(str(uri)).suffix.lower()
    image_format = Image.registered_extensions().get(suffix)
    if image_format is None:
        raise ValueError(f"{uri}: unknown image extension {suffix!r}")
    buffer = io.BytesIO()
    Image.fromarray(check_uint8(array, str(uri))).save(buffer, format=image_format)
    from ganbatch.io import storage  # the cloud stack only to write (decoding needs none)

    storage.write_bytes(uri, buffer.getvalue())


def check_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """array as a numpy array; ValueError naming `name` unless its pixels are uint8."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels, got {array.dtype}")
    return array
