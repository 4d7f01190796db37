"""Whatever raster a vendor sends becomes the JPEG we store; anything else is refused."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
from django.conf import settings
from PIL import Image

from imagegen import imaging
from imagegen.testing import vendor_payloads

pytestmark = pytest.mark.django_db

CAP = 20 * 1024 * 1024


def to_jpeg(data: bytes, **overrides) -> imaging.JpegImage:
    return imaging.to_jpeg(data, **{"max_bytes": CAP, "quality": 90, **overrides})


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(jpeg: imaging.JpegImage) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg.data))
    image.load()
    return image


def png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` (a decompression bomb's calling card)."""
    data = bytearray(vendor_payloads.image_bytes("PNG", (8, 8)))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_raster_formats_become_a_baseline_rgb_jpeg_of_the_same_size(fmt):
    source = vendor_payloads.image_bytes(fmt, (64, 36))

    jpeg = to_jpeg(source)

    image = decoded(jpeg)
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    assert (jpeg.width, jpeg.height) == (image.width, image.height) == (64, 36)
    assert jpeg.source_format == fmt


def test_colours_survive_the_conversion():
    jpeg = to_jpeg(encoded(Image.new("RGB", (32, 32), (0, 128, 128)), "WEBP", lossless=True))

    assert decoded(jpeg).getpixel((16, 16)) == pytest.approx((0, 128, 128), abs=4)


@pytest.mark.parametrize(
    "source",
    [
        Image.new("RGBA", (16, 16), (255, 0, 0, 0)),
        Image.new("LA", (16, 16), (0, 0)),
    ],
    ids=["rgba", "la"],
)
def test_transparency_is_flattened_onto_white(source):
    jpeg = to_jpeg(encoded(source, "PNG"))

    assert decoded(jpeg).getpixel((8, 8)) == pytest.approx((255, 255, 255), abs=2)


def test_palette_transparency_is_flattened_onto_white():
    source = Image.new("P", (16, 16), 0)
    source.putpalette([0, 0, 0] * 256)

    jpeg = to_jpeg(encoded(source, "PNG", transparency=0))

    assert decoded(jpeg).getpixel((8, 8)) == pytest.approx((255, 255, 255), abs=2)


def test_cmyk_jpeg_is_converted_to_rgb():
    jpeg = to_jpeg(encoded(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), "JPEG"))

    assert decoded(jpeg).mode == "RGB"


def test_quality_setting_is_applied():
    noisy = Image.effect_noise((128, 128), 80).convert("RGB")
    source = encoded(noisy, "PNG")

    assert len(to_jpeg(source, quality=30).data) < len(to_jpeg(source, quality=95).data)


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="36">'
    b'<rect width="64" height="36" fill="teal"/></svg>'
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (SVG, "not an image in any format we read"),
        (b"<html><body>Bad Gateway</body></html>", "not an image in any format we read"),
        (b'{"error": "nope"}', "not an image in any format we read"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image in any format we read"),
        (vendor_payloads.image_bytes("PNG", (64, 64))[:-30], "not a decodable raster image"),
        (vendor_payloads.image_bytes("JPEG", (64, 64))[:200], "not a decodable raster image"),
        (png_claiming_size(8000, 6000), "too large"),
        (png_claiming_size(40000, 40000), "not a decodable raster image"),
    ],
    ids=[
        "zero-bytes",
        "svg",
        "html",
        "json",
        "png-signature-only",
        "truncated-png",
        "truncated-jpeg",
        "over-pixel-cap",
        "decompression-bomb",
    ],
)
def test_anything_but_a_decodable_raster_is_refused(data, reason):
    with pytest.raises(imaging.InvalidImage, match=reason) as refused:
        to_jpeg(data)

    assert " object at 0x" not in str(refused.value)


def test_input_over_the_byte_cap_is_refused_before_decoding():
    source = vendor_payloads.image_bytes("PNG", (64, 36))

    with pytest.raises(imaging.InvalidImage, match="over the"):
        to_jpeg(source, max_bytes=len(source) - 1)

    assert to_jpeg(source, max_bytes=len(source)).width == 64


def test_at_most_the_configured_number_of_conversions_run_at_once(monkeypatch, settings):
    settings.IMAGEGEN_CONVERSION_CONCURRENCY = 2
    imaging._conversion_slots.cache_clear()
    running, peak, lock = 0, 0, threading.Lock()
    real_flatten = imaging._flatten

    def slow_flatten(image):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with lock:
            running -= 1
        return real_flatten(image)

    monkeypatch.setattr(imaging, "_flatten", slow_flatten)
    source = vendor_payloads.image_bytes("PNG")
    threads = [threading.Thread(target=to_jpeg, args=(source,)) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        imaging._conversion_slots.cache_clear()

    assert peak == 2


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd is Linux's")
def test_the_jpeg_is_encoded_into_a_file_descriptor_and_matches_pillows_own(monkeypatch):
    """Pillow lets other threads run while it encodes into a file descriptor, not into a
    BytesIO: the descriptor is what lets a server's conversions encode in parallel."""
    source = vendor_payloads.image_bytes("PNG", size=(64, 48), content="photo")
    expected = encoded(Image.open(io.BytesIO(source)).convert("RGB"), "JPEG", quality=90)
    descriptors = []
    save = Image.Image.save

    def spy(image: Image.Image, fp, *args, **kwargs) -> None:
        descriptors.append(fp.fileno())  # a BytesIO has none: io.UnsupportedOperation
        save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", spy)

    jpeg = to_jpeg(source)

    assert len(descriptors) == 1
    assert jpeg.data == expected
    assert (jpeg.width, jpeg.height) == (64, 48)


@pytest.mark.parametrize("failure", [OSError(24, "Too many open files"), AttributeError()])
def test_without_a_memfd_the_jpeg_is_encoded_in_memory_all_the_same(monkeypatch, failure):
    source = vendor_payloads.image_bytes("PNG", size=(64, 48), content="photo")
    expected = to_jpeg(source).data

    def refuse(*args: object) -> int:
        raise failure

    monkeypatch.setattr(os, "memfd_create", refuse, raising=False)

    assert to_jpeg(source).data == expected


def test_sixteen_bit_greyscale_keeps_its_tones():
    buffer = io.BytesIO()
    Image.new("I;16", (8, 8), 32768).save(buffer, format="PNG")

    jpeg = imaging.to_jpeg(buffer.getvalue(), max_bytes=10**6, quality=90)

    pixel = Image.open(io.BytesIO(jpeg.data)).getpixel((4, 4))
    assert all(120 <= channel <= 136 for channel in pixel)


# A fresh process, as a server's worker is: what earlier tests allocated would hide the effect.
_CONVERT_IN_A_THREAD = """
import resource, sys, threading
import django
django.setup()
from imagegen import imaging
from imagegen.testing import vendor_payloads
source = vendor_payloads.image_bytes(sys.argv[1], (1024, 1024))
faults = []
def convert():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        imaging.to_jpeg(source, max_bytes=10**8, quality=90)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
thread = threading.Thread(target=convert)
thread.start()
thread.join()
print(max(faults[1:]))
"""


@pytest.mark.skipif(imaging._mallopt() is None, reason="the allocator is only tuned under glibc")
def test_conversions_in_a_worker_thread_reuse_memory_instead_of_faulting_it_in():
    # Untuned, each 1024x1024 WebP conversion (Recraft's format) in a fresh process's thread
    # faulted its buffers in again: about 2,000 page faults every time, each paid for in CPU.
    result = subprocess.run(  # noqa: S603  (this interpreter, our own script)
        [sys.executable, "-c", _CONVERT_IN_A_THREAD, "WEBP"],
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.BASE_DIR,
        env={
            **{
                name: value
                for name, value in os.environ.items()
                if not name.startswith("IMAGEGEN_MALLOC_") and name != "LD_PRELOAD"
            },
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
        },
    )

    assert int(result.stdout) < 200


def test_allocator_settings_reach_mallopt(monkeypatch, settings):
    settings.IMAGEGEN_MALLOC_ARENA_MAX = 3
    settings.IMAGEGEN_MALLOC_MMAP_THRESHOLD = 0
    settings.IMAGEGEN_MALLOC_TRIM_THRESHOLD = 1234
    calls = []
    monkeypatch.setattr(imaging, "_mallopt", lambda: lambda *call: calls.append(call) or 1)

    assert imaging.tune_allocator()

    assert calls == [(imaging._M_ARENA_MAX, 3), (imaging._M_TRIM_THRESHOLD, 1234)]


def test_allocator_left_alone_without_glibc(monkeypatch):
    monkeypatch.setattr(imaging, "_mallopt", lambda: None)

    assert not imaging.tune_allocator()


def test_a_refused_allocator_setting_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(imaging, "_mallopt", lambda: lambda *call: 0)

    with caplog.at_level("WARNING", logger="imagegen.imaging"):
        assert imaging.tune_allocator()

    assert "was refused" in caplog.text


@pytest.mark.skipif(imaging._mallopt() is None, reason="the allocator is only tuned under glibc")
def test_an_allocator_setting_past_a_c_int_is_refused_not_truncated(settings, caplog):
    # 2**32 would reach mallopt as 0 ("trim always") if ctypes cut it to a C int.
    settings.IMAGEGEN_MALLOC_ARENA_MAX = 0
    settings.IMAGEGEN_MALLOC_MMAP_THRESHOLD = 0
    settings.IMAGEGEN_MALLOC_TRIM_THRESHOLD = 2**32

    with caplog.at_level("WARNING", logger="imagegen.imaging"):
        imaging.tune_allocator()

    assert f"mallopt(-1, {2**32}) was refused" in caplog.text


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_the_fakes_photo_like_images_carry_detail_and_convert(fmt):
    # The benchmarks' `--content photo`: a flat colour would make decoding look cheap.
    photo = vendor_payloads.image_bytes(fmt, (256, 192), content="photo")

    assert photo == vendor_payloads.image_bytes(fmt, (256, 192), content="photo")
    assert len(photo) > 10 * len(vendor_payloads.image_bytes(fmt, (256, 192)))
    jpeg = to_jpeg(photo)
    assert (jpeg.width, jpeg.height) == (256, 192)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_exif_orientation_is_applied_not_dropped(fmt):
    # A 400x200 picture whose EXIF says "rotate 90° clockwise to display" (orientation 6) is a
    # 200x400 portrait to every viewer. The stored JPEG carries no EXIF, so the rotation must be
    # applied to the pixels, or the picture is shown sideways with its dimensions swapped.
    image = Image.new("RGB", (400, 200), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 200, 200))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6

    jpeg = to_jpeg(encoded(image, fmt, exif=exif))

    assert (jpeg.width, jpeg.height) == (200, 400)
    stored = decoded(jpeg)
    assert stored.size == (200, 400)
    # Rotated clockwise, the left (blue) half is now the top half.
    top, bottom = stored.getpixel((100, 50)), stored.getpixel((100, 350))
    assert top[2] > 150 > top[0], top
    assert bottom[0] > 150 > bottom[2], bottom


def test_jpeg_size_reads_a_rotated_jpeg_as_viewers_show_it():
    # PATCH s3_key records an uploaded JPEG's size from jpeg_size, and the object keeps its EXIF:
    # a 400x200 JPEG tagged "rotate 90°" is shown 200x400, as to_jpeg records a generated one.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.new("RGB", (400, 200)), "JPEG", exif=exif)

    assert imaging.jpeg_size(data) == (200, 400) == (to_jpeg(data).width, to_jpeg(data).height)
