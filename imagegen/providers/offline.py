"""`offline-sketch`: the prompt drawn on a gradient, for local debug runs without vendor keys."""

from __future__ import annotations

import hashlib
import io
import textwrap

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image, ImageDraw, ImageFont

from imagegen.providers.base import GenerationRequest, GenerationResult, ImageProvider

_SIZES = {
    "1:1": (768, 768),
    "16:9": (1024, 576),
    "9:16": (576, 1024),
    "4:3": (896, 672),
    "3:4": (672, 896),
    "3:2": (960, 640),
    "2:3": (640, 960),
}


class OfflineSketchProvider(ImageProvider):
    """Draws a real image with no network: only allowed with DEBUG on (never in production)."""

    max_prompt_chars = 10_000

    def __init__(self, *, name: str) -> None:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "The offline-sketch provider only runs with DJANGO_DEBUG on; "
                "set RECRAFT_API_KEY and/or GEMINI_API_KEY instead."
            )
        super().__init__(name=name)

    @property
    def model(self) -> str:
        return "offline-sketch-1"

    def generate(self, request: GenerationRequest, *, timeout: float) -> GenerationResult:
        width, height = _SIZES.get(request.aspect_ratio, _SIZES["1:1"])
        digest = hashlib.sha256(request.prompt.encode()).digest()
        start, end = digest[:3], digest[3:6]
        # A vertical gradient between two colours derived from the prompt.
        column = Image.new("RGB", (1, 256))
        for y in range(256):
            column.putpixel(
                (0, y), tuple(start[i] + (end[i] - start[i]) * y // 255 for i in range(3))
            )
        image = column.resize((width, height))
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=max(width // 28, 14))
        lines = textwrap.wrap(request.prompt, width=38)[:10]
        draw.multiline_text(
            (width // 16, height // 10),
            "\n".join(lines),
            font=font,
            fill="white",
            stroke_width=2,
            stroke_fill="black",
            spacing=8,
        )
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return GenerationResult(
            image_bytes=buffer.getvalue(), mime_type="image/png", provider_model=self.model
        )
