"""The provider contract: frozen dataclasses in and out, and one exception family."""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

logger = logging.getLogger(__name__)

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")


@dataclass(frozen=True)
class GenerationRequest:
    """What to draw: the full prompt sent upstream, the aspect ratio and the routed category."""

    prompt: str
    aspect_ratio: str
    category: str = ""


@dataclass(frozen=True)
class GenerationResult:
    """What came back: raw image bytes (any raster format) and the vendor's own figures."""

    image_bytes: bytes
    mime_type: str
    provider_model: str
    vendor_request_id: str = ""
    cost_usd: Decimal = Decimal(0)
    http_status: int = 200
    # The vendor's usage figures as sent (Recraft `credits`, Google `usageMetadata`).
    usage: dict[str, Any] = field(default_factory=dict)


MAX_USAGE_BYTES = 4096


def vendor_usage(value: object) -> dict[str, Any]:
    """A vendor's usage block to keep with the attempt: a JSON object of at most
    `MAX_USAGE_BYTES`, else `{}` (the bill's figures are small; anything bigger is not them).
    NaN and infinities, which Python's JSON parser lets through, are no JSON: `{}` too."""
    if not isinstance(value, dict):
        return {}
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if len(encoded) <= MAX_USAGE_BYTES else {}


# A generated image costs cents; a figure worth more than this for one call is no bill.
MAX_CALL_COST_USD = Decimal(10)
_MICRODOLLAR = Decimal("0.000001")


def vendor_count(value: object) -> int | float | None:
    """A count from a vendor's usage figures (credits, tokens): a finite number, not negative,
    else None. JSON numbers such as NaN, 1e999 or -40 are no count."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value >= 0 else None


def vendor_cost(amount: Decimal, *, provider: str) -> Decimal:
    """A call's cost, computed from the vendor's figures, to the micro-dollar; 0, with a
    warning, past `MAX_CALL_COST_USD`: the image is kept and the figures with it, but the
    amount is no bill (and would not fit the records)."""
    if amount > MAX_CALL_COST_USD:
        logger.warning("vendor_cost_implausible provider=%s amount_usd=%.6g", provider, amount)
        return Decimal(0)
    return amount.quantize(_MICRODOLLAR)


class ProviderError(Exception):
    """A provider call that produced no usable image. `outcome` classifies it for the record."""

    outcome: ClassVar[str] = "unavailable"
    retryable: ClassVar[bool] = False
    # Answers of this kind from one provider for one image after which it is not retried
    # (None: the IMAGEGEN_PROVIDER_ATTEMPTS setting alone decides).
    max_attempts: ClassVar[int | None] = None
    counts_against_breaker: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        vendor_request_id: str = "",
        provider_model: str = "",
        cost_usd: Decimal = Decimal(0),
        usage: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.vendor_request_id = vendor_request_id
        self.provider_model = provider_model
        self.cost_usd = cost_usd
        self.usage = usage or {}


class ProviderUnavailable(ProviderError):
    """Connection errors, 408 and 5xx: worth another try."""

    outcome = "unavailable"
    retryable = True


class ProviderRateLimited(ProviderUnavailable):
    """429: worth another try after the wait the vendor asks for."""

    outcome = "rate_limited"


class ProviderTimeout(ProviderUnavailable):
    """No complete answer within the deadline."""

    outcome = "timeout"


class ProviderBadOutput(ProviderUnavailable):
    """A 200 with junk: wrong-shaped JSON, bytes that are no raster image, too large."""

    outcome = "bad_output"


class ProviderNoImage(ProviderUnavailable):
    """The model answered without an image for no stated policy reason (Google NO_IMAGE, or
    text only for a vague prompt): worth one retry, no more.

    It describes the prompt, not the vendor's health: one user's prompts must not open the
    circuit that every user's requests go through.
    """

    outcome = "no_image"
    max_attempts = 2
    counts_against_breaker = False


class ProviderMisconfigured(ProviderError):
    """401/403, an invalid key or an endpoint that redirects: retrying cannot help, another
    provider can."""

    outcome = "credentials"


class ProviderRejectedRequest(ProviderError):
    """A 4xx that says our request was wrong (a bug on our side): never retried as is.

    It says nothing about the vendor's health, so it does not count towards opening its circuit.
    """

    outcome = "rejected"
    counts_against_breaker = False


class ContentBlocked(ProviderError):
    """The vendor's safety filter refused the prompt or the image; `block_reason` says why."""

    outcome = "blocked"
    counts_against_breaker = False

    def __init__(self, message: str, *, block_reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.block_reason = block_reason


class CircuitOpen(ProviderError):
    """The provider was skipped without a call: it failed repeatedly and is cooling down."""

    outcome = "circuit_open"
    counts_against_breaker = False


class ImageProvider(ABC):
    """A hosted image model. Subclasses only translate their vendor's wire format."""

    #: Longest prompt the configured upstream model accepts, in characters.
    max_prompt_chars: int = 1000

    def __init__(self, *, name: str) -> None:
        self.name = name

    @property
    @abstractmethod
    def model(self) -> str:
        """The upstream model id requests go to."""

    @abstractmethod
    def generate(self, request: GenerationRequest, *, timeout: float) -> GenerationResult:
        """Generate one image within `timeout` seconds in all, or raise a `ProviderError`."""

    def describe(self) -> dict[str, Any]:
        """The provider's configuration for operators, with secrets masked."""
        return {"name": self.name, "backend": type(self).__name__, "model": self.model}


def redact_secret(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` masked (a vendor error quoting our key)."""
    return text.replace(secret, mask_secret(secret)) if secret else text


def mask_secret(secret: str) -> str:
    """`sk-...abcd` style: enough to tell keys apart, never enough to use one."""
    if not secret:
        return "(not set)"
    return f"...{secret[-4:]}" if len(secret) > 8 else "****"
