"""Google's Gemini image models (`google-imagen` route) through `models/{model}:generateContent`."""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal
from typing import Any

from django.conf import settings

from imagegen.providers.base import (
    ContentBlocked,
    GenerationRequest,
    GenerationResult,
    ImageProvider,
    ProviderBadOutput,
    ProviderError,
    ProviderMisconfigured,
    ProviderNoImage,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderUnavailable,
    mask_secret,
    redact_secret,
    vendor_cost,
    vendor_count,
    vendor_usage,
)
from imagegen.providers.http import HttpReply, post_json

# Finish reasons that mean a policy refused the image: explained to the caller, never hammered.
BLOCKING_FINISH_REASONS = frozenset(
    {
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "BLOCKLIST",
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_MILLION = Decimal(1_000_000)


class GoogleImageProvider(ImageProvider):
    """Gemini image models: one image per call, returned as inline data."""

    max_prompt_chars = 10_000

    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        base_url: str = "https://generativelanguage.googleapis.com/v1beta",
        model: str = "gemini-2.5-flash-image",
        image_size: str = "1K",
        prices: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.image_size = image_size
        self.prices = {key: Decimal(value) for key, value in (prices or {}).items()}

    @property
    def model(self) -> str:
        return self._model

    @property
    def takes_image_size(self) -> bool:
        """Gemini 2.x image models make ~1 MP only and reject `imageSize`."""
        return bool(self.image_size) and not self.model.startswith("gemini-2.")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "base_url": self.base_url,
            "api_key": mask_secret(self.api_key),
        }

    def build_payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The generateContent body asking for an image only."""
        image_config: dict[str, str] = {"aspectRatio": request.aspect_ratio}
        if self.takes_image_size:
            image_config["imageSize"] = self.image_size
        return {
            "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": image_config},
        }

    def generate(self, request: GenerationRequest, *, timeout: float) -> GenerationResult:
        reply = post_json(
            f"{self.base_url}/models/{self.model}:generateContent",
            payload=self.build_payload(request),
            headers={"x-goog-api-key": self.api_key},
            timeout=timeout,
            connect_timeout=settings.IMAGEGEN_CONNECT_TIMEOUT,
            max_body_bytes=settings.IMAGEGEN_MAX_IMAGE_BYTES * 4 // 3 + 256 * 1024,
        )
        if reply.status != 200:
            raise self._error(reply)
        body = reply.json()
        if not isinstance(body, dict):
            raise ProviderBadOutput("answer is not a JSON object", http_status=200)
        return self._result(body)

    def cost_of(self, body: dict[str, Any], model: str) -> Decimal:
        """Image output tokens x the model's price per million tokens (0 when unknown)."""
        usage = body.get("usageMetadata")
        price = self.prices.get(model, self.prices.get(self.model))
        if not isinstance(usage, dict) or price is None:
            return Decimal(0)
        tokens = 0
        for detail in _list(usage.get("candidatesTokensDetails")):
            if isinstance(detail, dict) and detail.get("modality") == "IMAGE":
                count = vendor_count(detail.get("tokenCount"))
                tokens += count if isinstance(count, int) else 0
        return vendor_cost(Decimal(tokens) * price / _MILLION, provider=self.name)

    def _result(self, body: dict[str, Any]) -> GenerationResult:
        response_id = str(body.get("responseId") or "")[:200]
        model = str(body.get("modelVersion") or self.model)[:100]
        cost = self.cost_of(body, model)
        figures = {
            "vendor_request_id": response_id,
            "provider_model": model,
            "cost_usd": cost,
            "usage": vendor_usage(body.get("usageMetadata")),
        }

        feedback = body.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = str(feedback["blockReason"])
            raise ContentBlocked(
                f"Google refused the prompt ({reason})",
                block_reason=reason,
                http_status=200,
                **figures,
            )
        candidates = body.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise ProviderBadOutput("answer has no candidates", http_status=200, **figures)
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        finish_reason = str(candidate.get("finishReason") or "")
        image = _last_image_part(candidate.get("content"))
        if image is None:
            explanation = str(candidate.get("finishMessage") or "")[:300]
            if finish_reason in BLOCKING_FINISH_REASONS:
                reason = f"{finish_reason}: {explanation}" if explanation else finish_reason
                raise ContentBlocked(
                    f"Google refused the image ({reason})",
                    block_reason=reason,
                    http_status=200,
                    **figures,
                )
            # NO_IMAGE, IMAGE_OTHER, OTHER, STOP with text only, or a reason not known yet.
            raise ProviderNoImage(
                f"Google returned no image (finishReason {finish_reason or 'missing'})",
                http_status=200,
                **figures,
            )
        mime_type, encoded = image
        try:
            data = _b64decode(encoded)
        except (binascii.Error, ValueError) as exc:
            raise ProviderBadOutput(
                "inlineData is not valid base64", http_status=200, **figures
            ) from exc
        return GenerationResult(image_bytes=data, mime_type=mime_type, **figures)

    def _error(self, reply: HttpReply) -> ProviderError:
        status_name, detail, reasons, retry_delay = _google_error(reply)
        # A vendor may quote the key it refused: the message reaches API answers and logs.
        message = redact_secret(
            f"Google answered HTTP {reply.status} {status_name}: {detail}".strip(), self.api_key
        )
        kwargs = {"http_status": reply.status, "provider_model": self.model}
        if "API_KEY_INVALID" in reasons or reply.status in (401, 403):
            return ProviderMisconfigured(message, **kwargs)
        if reply.status == 429:
            return ProviderRateLimited(message, retry_after=retry_delay, **kwargs)
        if reply.status == 408 or reply.status >= 500:
            return ProviderUnavailable(message, retry_after=retry_delay, **kwargs)
        if reply.status == 404:
            return ProviderMisconfigured(f"{message} (unknown or retired model?)", **kwargs)
        return ProviderRejectedRequest(message, **kwargs)


def _list(value: Any) -> list:
    # Wrong-shaped answers must fail as bad output or be ignored, never crash on iteration.
    return value if isinstance(value, list) else []


def _last_image_part(content: Any) -> tuple[str, str] | None:
    """The last non-thought `inlineData` image part as (mimeType, data), or None."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    for part in reversed(parts):
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        inline = part.get("inlineData") or part.get("inline_data")
        if not isinstance(inline, dict):
            continue
        mime_type = str(inline.get("mimeType") or inline.get("mime_type") or "")
        data = inline.get("data")
        if mime_type.startswith("image/") and isinstance(data, str) and data:
            return mime_type, data
    return None


def _b64decode(encoded: str) -> bytes:
    # Standard or URL-safe alphabet, padding optional.
    padded = encoded + "=" * (-len(encoded) % 4)
    if "-" in encoded or "_" in encoded:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def _google_error(reply: HttpReply) -> tuple[str, str, set[str], float | None]:
    """(status name, message, detail reasons, RetryInfo delay in seconds) of an error answer."""
    try:
        body = reply.json()
    except ProviderBadOutput:
        return "", reply.text_excerpt() or "(empty body)", set(), None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", reply.text_excerpt(), set(), None
    reasons: set[str] = set()
    retry_delay = None
    for detail in _list(error.get("details")):
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            retry_delay = float(match.group(1)) if match else None
    return (
        str(error.get("status") or ""),
        str(error.get("message") or "")[:300],
        reasons,
        retry_delay,
    )
