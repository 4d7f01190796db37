"""Vendor answers in the exact wire shapes of PROVIDERS.md, and small real images to put in them."""

from __future__ import annotations

import base64
import io
import random
from typing import Any, Literal

from PIL import Image

Content = Literal["flat", "photo"]
CONTENTS: tuple[Content, ...] = ("flat", "photo")


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (64, 36),
    color: str = "teal",
    *,
    content: Content = "flat",
) -> bytes:
    """A real image in `fmt` (PNG, WEBP, JPEG; RGBA for PNG to exercise flattening).

    `flat` is one `color`: tiny, and quick to decode. `photo` is gradients under a fixed grain,
    which compresses and decodes about as a photograph does (at 1024x1024: a 1.8 MB PNG, a 150
    KB WebP, each several times slower to decode than a flat one).
    """
    mode = "RGBA" if fmt == "PNG" else "RGB"
    image = Image.new(mode, size, color) if content == "flat" else _photo_like(size).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _photo_like(size: tuple[int, int]) -> Image.Image:
    width, height = size
    noise = random.Random(width * height).randbytes(width * height)  # noqa: S311  (texture)
    grain = Image.frombytes("L", size, noise)
    ramps = (
        Image.linear_gradient("L"),
        Image.radial_gradient("L"),
        Image.linear_gradient("L").rotate(90),
    )
    return Image.merge("RGB", [Image.blend(ramp.resize(size), grain, 0.08) for ramp in ramps])


def recraft_success(
    data: bytes | None = None, *, credits: int = 35, image_id: str = "rc-img-1"
) -> dict[str, Any]:
    """Recraft's 200 with `response_format: b64_json` (WebP bytes, as Recraft sends by default)."""
    payload = image_bytes("WEBP") if data is None else data
    return {
        "created": 1764000000,
        "credits": credits,
        "data": [{"image_id": image_id, "b64_json": base64.b64encode(payload).decode()}],
    }


def gemini_success(
    data: bytes | None = None,
    *,
    mime_type: str = "image/png",
    image_tokens: int = 1290,
    model: str = "gemini-2.5-flash-image",
    response_id: str = "gm-resp-1",
    with_thought_draft: bool = False,
    urlsafe: bool = False,
) -> dict[str, Any]:
    """Gemini's 200: optional commentary, optional thought draft, then the final image part."""
    payload = image_bytes("PNG") if data is None else data
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    parts: list[dict[str, Any]] = [{"text": "Here is your image."}]
    if with_thought_draft:
        draft = image_bytes("PNG", color="red")
        parts.append(
            {
                "inlineData": {"mimeType": "image/png", "data": base64.b64encode(draft).decode()},
                "thought": True,
            }
        )
    parts.append(
        {
            "inlineData": {"mimeType": mime_type, "data": encode(payload).decode()},
            "thoughtSignature": "c2lnbmF0dXJl",
        }
    )
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": image_tokens + 6,
            "totalTokenCount": image_tokens + 18,
            "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image_tokens}],
        },
        "modelVersion": model,
        "responseId": response_id,
    }


def gemini_prompt_blocked(reason: str = "PROHIBITED_CONTENT") -> dict[str, Any]:
    """The prompt refused before generation: `promptFeedback.blockReason`, no `candidates` key."""
    return {
        "promptFeedback": {"blockReason": reason},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "gm-blocked-1",
    }


def gemini_finished_without_image(
    reason: str = "IMAGE_SAFETY", message: str = "", *, content: Any = None
) -> dict[str, Any]:
    """A candidate with a finishReason and empty (`{}`) or missing content."""
    candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
    if message:
        candidate["finishMessage"] = message
    if content is not None:
        candidate["content"] = content
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "gm-empty-1",
    }


def gemini_error(
    code: int, status: str, message: str = "", *, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Google's error body: `{"error": {"code", "message", "status", "details"}}`."""
    return {
        "error": {
            "code": code,
            "message": message or status,
            "status": status,
            "details": details or [],
        }
    }


def gemini_retry_info(delay: str = "17s") -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def gemini_invalid_key() -> dict[str, Any]:
    return gemini_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        details=[
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        ],
    )
