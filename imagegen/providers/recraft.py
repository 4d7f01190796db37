"""Recraft AI (`recraft-ai`): POST /images/generations, one raster image as base64."""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Any

from django.conf import settings

from imagegen.providers.base import (
    GenerationRequest,
    GenerationResult,
    ImageProvider,
    ProviderBadOutput,
    ProviderError,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderUnavailable,
    mask_secret,
    redact_secret,
    vendor_cost,
    vendor_count,
    vendor_usage,
)
from imagegen.providers.http import HttpReply, parse_retry_after, post_json

# Pixel sizes per aspect ratio for each model family (PROVIDERS.md).
_V4_SIZES = {
    "1:1": "1024x1024",
    "16:9": "1344x768",
    "9:16": "768x1344",
    "4:3": "1216x896",
    "3:4": "896x1216",
    "3:2": "1280x832",
    "2:3": "832x1280",
}
_V3_SIZES = {
    "1:1": "1024x1024",
    "16:9": "1820x1024",
    "9:16": "1024x1820",
    "4:3": "1365x1024",
    "3:4": "1024x1365",
    "3:2": "1536x1024",
    "2:3": "1024x1536",
}
CREDITS_PER_USD = Decimal(1000)


class RecraftProvider(ImageProvider):
    """Recraft's raster models. V4 takes no style; V2/V3 take `style` (+ `substyle`)."""

    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        base_url: str = "https://external.api.recraft.ai/v1",
        model: str = "recraftv4_1",
        style: str = "realistic_image",
        substyle: str = "",
    ) -> None:
        super().__init__(name=name)
        if model.endswith("_vector"):
            raise ValueError(f"{model} returns SVG; configure a raster Recraft model")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.style = style
        self.substyle = substyle
        self.is_v4 = model.startswith("recraftv4")
        self.max_prompt_chars = 10_000 if self.is_v4 else 1000

    @property
    def model(self) -> str:
        return self._model

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "base_url": self.base_url,
            "api_key": mask_secret(self.api_key),
        }

    def build_payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The request body for one raster image returned inline."""
        sizes = _V4_SIZES if self.is_v4 else _V3_SIZES
        payload: dict[str, Any] = {
            "prompt": request.prompt[: self.max_prompt_chars],
            "model": self.model,
            "size": sizes.get(request.aspect_ratio, sizes["1:1"]),
            "n": 1,
            "response_format": "b64_json",
        }
        if not self.is_v4 and self.style:
            payload["style"] = self.style
            if self.substyle:
                payload["substyle"] = self.substyle
        return payload

    def generate(self, request: GenerationRequest, *, timeout: float) -> GenerationResult:
        reply = post_json(
            f"{self.base_url}/images/generations",
            payload=self.build_payload(request),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
            connect_timeout=settings.IMAGEGEN_CONNECT_TIMEOUT,
            max_body_bytes=settings.IMAGEGEN_MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024,
        )
        if reply.status != 200:
            raise self._error(reply)
        return self._result(reply)

    def _result(self, reply: HttpReply) -> GenerationResult:
        body = reply.json()
        try:
            item = body["data"][0]
            encoded = item["b64_json"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderBadOutput(
                "answer has no data[0].b64_json", http_status=200, provider_model=self.model
            ) from exc
        sent = body.get("credits") if isinstance(body, dict) else None
        credits = vendor_count(sent)
        cost = (
            vendor_cost(Decimal(str(credits)) / CREDITS_PER_USD, provider=self.name)
            if credits is not None
            else Decimal(0)
        )
        figures = {
            "vendor_request_id": str(item.get("image_id") or "")[:200],
            "provider_model": self.model,
            "cost_usd": cost,
            "usage": vendor_usage({"credits": sent}) if sent is not None else {},
        }
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ProviderBadOutput(
                "b64_json is not valid base64", http_status=200, **figures
            ) from exc
        # Recraft's answer names no format: the bytes are sniffed.
        return GenerationResult(image_bytes=data, mime_type="", **figures)

    def _error(self, reply: HttpReply) -> ProviderError:
        detail = _error_detail(reply)
        # A vendor may quote the key it refused: the message reaches API answers and logs.
        message = redact_secret(f"Recraft answered HTTP {reply.status}: {detail}", self.api_key)
        kwargs = {"http_status": reply.status, "provider_model": self.model}
        if reply.status == 429:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            return ProviderRateLimited(message, retry_after=retry_after, **kwargs)
        if reply.status == 408 or reply.status >= 500:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            return ProviderUnavailable(message, retry_after=retry_after, **kwargs)
        if reply.status in (401, 402, 403):
            return ProviderMisconfigured(message, **kwargs)
        return ProviderRejectedRequest(message, **kwargs)


def _error_detail(reply: HttpReply) -> str:
    # Error bodies are plain text or JSON ({"code", "message"} is likely; PROVIDERS.md).
    try:
        body = reply.json()
    except ProviderBadOutput:
        return reply.text_excerpt() or "(empty body)"
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "code"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key][:300]
    return reply.text_excerpt()
