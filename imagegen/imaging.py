"""Turn whatever raster image a vendor sent (WebP, PNG, JPEG) into the JPEG we store."""

from __future__ import annotations

import ctypes
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.ExifTags import Base as ExifTag

logger = logging.getLogger(__name__)

# Vendors make at most 4K images; anything far larger is a decompression bomb, not a picture.
MAX_PIXELS = 40_000_000
_RASTER_FORMATS = frozenset({"WEBP", "PNG", "JPEG", "MPO", "GIF", "BMP", "TIFF", "AVIF"})


class InvalidImage(ValueError):
    """The bytes are not a decodable raster image within our limits."""


@dataclass(frozen=True)
class JpegImage:
    data: bytes
    width: int
    height: int
    source_format: str


@cache
def _conversion_slots() -> threading.BoundedSemaphore:
    # Decoding a 4K image takes tens of MB: a burst of landing answers must not all decode at once.
    return threading.BoundedSemaphore(settings.IMAGEGEN_CONVERSION_CONCURRENCY)


@contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """`data` opened as a raster image within our limits (its header read, not its pixels).

    Anything that goes wrong reading it, in the `with` block too, is an `InvalidImage`: SVG or
    other non-raster data, truncated files, and images over `MAX_PIXELS` (a decompression bomb
    is refused from its header, before a pixel is decoded).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as source:
                if (source.format or "") not in _RASTER_FORMATS:
                    raise InvalidImage(f"unsupported image format {source.format or 'unknown'}")
                if source.width * source.height > MAX_PIXELS:
                    raise InvalidImage(f"the image is {source.width}x{source.height}, too large")
                yield source
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        # Pillow's message names its in-memory file object ("<_io.BytesIO object at 0x...>").
        raise InvalidImage("the bytes are not an image in any format we read") from exc
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise InvalidImage(f"the bytes are not a decodable raster image ({exc})") from exc


def to_jpeg(data: bytes, *, max_bytes: int, quality: int) -> JpegImage:
    """Decode `data` and re-encode it as a baseline RGB JPEG.

    Raises `InvalidImage` for empty or oversized input and for what `_opened` refuses.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InvalidImage(f"the image is {len(data)} bytes, over the {max_bytes}-byte cap")
    with _conversion_slots():
        with _opened(data) as source:
            source_format = source.format or ""
            source.load()
            rgb = _flatten(_upright(source))
        jpeg = _encode_jpeg(rgb, quality=quality)
    return JpegImage(data=jpeg, width=rgb.width, height=rgb.height, source_format=source_format)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG, read from its header.

    Raises `InvalidImage` for bytes that are not a JPEG and for what `_opened` refuses.
    """
    with _opened(data) as image:
        # Pillow names JPEGs with extra pictures (camera previews) MPO.
        if image.format not in ("JPEG", "MPO"):
            raise InvalidImage(f"it is {image.format}, not a JPEG")
        # As viewers show it, as `to_jpeg` records a converted image: orientations 5-8 turn it
        # a quarter, swapping width and height.
        if image.getexif().get(ExifTag.Orientation, 1) in (5, 6, 7, 8):
            return image.height, image.width
        return image.size


def _encode_jpeg(image: Image.Image, *, quality: int) -> bytes:
    """`image` as baseline JPEG bytes, encoded without holding the GIL.

    Pillow lets other threads run while it encodes into a file descriptor, not while it encodes
    into a BytesIO: there, every conversion in a server's or a worker's threads waited for the
    others' encoding (two threads encoding ran 1.07x as fast as one; through a descriptor,
    2.03x). An anonymous in-memory file (memfd) is such a descriptor, with no disk behind it.
    """
    params = {"format": "JPEG", "quality": quality, "optimize": False}
    try:
        descriptor = os.memfd_create("jpeg", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        # Not Linux, or no descriptor to be had (a sandbox's filter, the process's limit):
        # correct, only without that parallelism.
        buffer = io.BytesIO()
        image.save(buffer, **params)
        return buffer.getvalue()
    with os.fdopen(descriptor, "w+b") as file:
        image.save(file, **params)
        file.seek(0)
        return file.read()


def _upright(image: Image.Image) -> Image.Image:
    """`image` as viewers show it: its EXIF orientation (1 as stored; 2-8 flip and/or rotate)
    applied to the pixels, as the JPEG we store carries no EXIF (else a picture tagged "rotate
    90°" was stored sideways, its width and height swapped). Untagged images, nearly all of
    them, are returned as they are."""
    if image.getexif().get(ExifTag.Orientation, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (JPEG has no alpha)."""
    if image.mode.startswith("I"):
        # 16-bit greyscale: scale to 8 bits, or every pixel above 255 would clip to white.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        # An RGBA mask pastes through its own alpha band: no copy of the band (3x faster).
        background.paste(rgba, mask=rgba)
        return background
    return image.convert("RGB")


# mallopt(3) parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's `mallopt`, or None under another C library (musl, macOS, Windows)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def tune_allocator() -> bool:
    """Keep image-sized buffers in this process's heap instead of handing them back to the kernel.

    Out of the box glibc serves each block over its mmap threshold (128 KiB at start) with a new
    mapping and unmaps it when freed, and gives back free heap above its trim threshold. A
    1024x1024 conversion allocates about 16 MB in 4 MB blocks (the decoder's canvas, the decoded
    image, its RGB copy), so every WebP conversion (Recraft's format) in a request thread faulted
    some 2,000-4,000 fresh pages in again: 10 ms of CPU in a 25 ms `POST /image-gen`
    (bench/overhead.py). With a fixed mmap threshold above those blocks and a trim threshold
    above a few conversions' worth, a freed block is reused by the next conversion. The arena
    cap bounds how many heaps keep such free space: gunicorn and the Celery worker run many
    threads, and glibc gives up to 8 heaps per core.
    `IMAGEGEN_MALLOC_*` settings set the values; 0 leaves that one at glibc's default.
    Returns False when the C library is not glibc (nothing is changed then).
    https://man7.org/linux/man-pages/man3/mallopt.3.html
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    for parameter, value in (
        (_M_ARENA_MAX, settings.IMAGEGEN_MALLOC_ARENA_MAX),
        (_M_MMAP_THRESHOLD, settings.IMAGEGEN_MALLOC_MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, settings.IMAGEGEN_MALLOC_TRIM_THRESHOLD),
    ):
        if not value:
            continue
        # ctypes would cut a value past a C int silently (2**32 to 0: "trim always").
        if not 0 < value < 2**31 or not mallopt(parameter, value):
            logger.warning("mallopt(%d, %d) was refused; keeping glibc's default", parameter, value)
    return True
