"""What the real vendors refuse, from PROVIDERS.md, so that the fakes refuse it too.

A fake that answers 200 to a request the vendor would refuse proves nothing about our client:
both fakes (the loopback server and the tests' `responses` mock) check every request against
these rules, written from the vendors' documentation, not from our client's code.
`refusal()` gives the vendor's own answer to a bad request, or None for a good one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imagegen.testing import vendor_payloads

# -- Recraft -----------------------------------------------------------------------------------
RECRAFT_MODELS = frozenset(
    {"recraftv2", "recraftv3", "recraftv4", "recraftv4_1", "recraftv4_pro", "recraftv4_1_pro"}
)
RECRAFT_V3_SIZES = frozenset(
    [
        "1024x1024",
        "1365x1024",
        "1024x1365",
        "1536x1024",
        "1024x1536",
        "1820x1024",
        "1024x1820",
        "2048x1024",
        "1024x2048",
        "1434x1024",
        "1024x1434",
        "1280x1024",
        "1024x1280",
        "1707x1024",
        "1024x1707",
    ]
)
RECRAFT_V4_SIZES = frozenset(
    [
        "1024x1024",
        "1344x768",
        "768x1344",
        "1216x896",
        "896x1216",
        "1280x832",
        "832x1280",
        "1152x896",
        "896x1152",
        "1536x768",
        "768x1536",
        "1280x896",
        "896x1280",
        "832x1344",
    ]
)
_ASPECT = re.compile(r"^[1-9][0-9]?:[1-9][0-9]?$")

# -- Gemini ------------------------------------------------------------------------------------
GEMINI_ASPECT_RATIOS = frozenset(
    ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
)
_GEMINI_EXTRA_RATIOS = frozenset(["1:4", "4:1", "1:8", "8:1"])
# Model id: (image sizes it takes, None for "no imageSize"; extra ratios; output mime type).
GEMINI_MODELS: dict[str, tuple[frozenset[str] | None, frozenset[str], str]] = {
    "gemini-2.5-flash-image": (None, frozenset(), "image/png"),
    "gemini-3.1-flash-lite-image": (frozenset({"1K"}), _GEMINI_EXTRA_RATIOS, "image/jpeg"),
    "gemini-nano-banana-2.1": (frozenset({"1K", "2K", "4K"}), _GEMINI_EXTRA_RATIOS, "image/jpeg"),
    "gemini-3-pro-image": (frozenset({"1K", "2K", "4K"}), frozenset(), "image/jpeg"),
}
# generateContent's own fields, in the camelCase and snake_case the server takes.
_GEMINI_FIELDS = frozenset(
    {
        "contents",
        "generationConfig",
        "safetySettings",
        "systemInstruction",
        "tools",
        "toolConfig",
        "cachedContent",
    }
)
_GEMINI_CONFIG_FIELDS = frozenset(
    {
        "responseModalities",
        "imageConfig",
        "candidateCount",
        "temperature",
        "topP",
        "topK",
        "seed",
        "maxOutputTokens",
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "thinkingConfig",
        "mediaResolution",
        "speechConfig",
    }
)
_GEMINI_IMAGE_FIELDS = frozenset({"aspectRatio", "imageSize"})

Refusal = tuple[int, dict[str, Any] | bytes]


def refusal(
    vendor: str, *, model: str, headers: Mapping[str, str], payload: Any, query: str = ""
) -> Refusal | None:
    """The vendor's answer to a request it refuses (status, body), or None when it takes it.

    `headers` are matched without regard to case; `model` is Gemini's from the path, ignored
    for Recraft (whose model is in the body).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    if vendor == "recraft":
        return _recraft_refusal(lowered, payload)
    return _gemini_refusal(model, lowered, payload, query)


def _recraft_refusal(headers: Mapping[str, str], payload: Any) -> Refusal | None:
    if not re.fullmatch(r"Bearer \S+", headers.get("authorization", "")):
        return 401, b"401 request unauthorized"
    if not isinstance(payload, dict):
        return _recraft_bad("the body must be a JSON object")
    prompt, model = payload.get("prompt"), payload.get("model", "recraftv4_1")
    # `*_vector` models are real (they draw SVG, which is no use to us, but the vendor takes them).
    if not isinstance(model, str) or model.removesuffix("_vector") not in RECRAFT_MODELS:
        return _recraft_bad(f"unknown model {model!r}")
    v4 = model.startswith("recraftv4")
    if not isinstance(prompt, str) or not prompt.strip():
        return _recraft_bad("prompt is required")
    if len(prompt) > (10000 if v4 else 1000):
        return _recraft_bad("prompt is too long")
    if v4 and ("style" in payload or "substyle" in payload):
        return _recraft_bad("style and substyle are not supported by this model")
    size = payload.get("size")
    if size is not None and not (
        isinstance(size, str)
        and (size in (RECRAFT_V4_SIZES if v4 else RECRAFT_V3_SIZES) or _ASPECT.match(size))
    ):
        return _recraft_bad(f"invalid size {size!r} for {model}")
    n = payload.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 6:
        return _recraft_bad("n must be between 1 and 6")
    if payload.get("response_format", "url") not in ("url", "b64_json", "multipart"):
        return _recraft_bad("invalid response_format")
    if payload.get("image_format", "webp") not in ("webp", "png"):
        return _recraft_bad("invalid image_format")
    return None


def _recraft_bad(message: str) -> Refusal:
    return 400, {"code": "invalid_request", "message": message}


def _gemini_refusal(
    model: str, headers: Mapping[str, str], payload: Any, query: str
) -> Refusal | None:
    if not headers.get("x-goog-api-key", "").strip() and "key=" not in query:
        return _gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
    if model not in GEMINI_MODELS:
        return _gemini_error(404, "NOT_FOUND", f"models/{model} is not found for API version")
    sizes, extra_ratios, _ = GEMINI_MODELS[model]
    if not isinstance(payload, dict):
        return _gemini_bad("Invalid JSON payload received.")
    config = payload.get("generationConfig", payload.get("generation_config", {}))
    image = (
        config.get("imageConfig", config.get("image_config", {}))
        if isinstance(config, dict)
        else {}
    )
    for fields, known, where in (
        (payload, _GEMINI_FIELDS, ""),
        (config, _GEMINI_CONFIG_FIELDS, "generation_config."),
        (image, _GEMINI_IMAGE_FIELDS, "generation_config.image_config."),
    ):
        if not isinstance(fields, dict):
            return _gemini_bad(f"Invalid value at '{where or 'request'}': not an object.")
        unknown = [name for name in fields if _camel(name) not in known]
        if unknown:
            return _gemini_bad(
                f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                f"'{where.rstrip('.') or 'request'}'."
            )
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        return _gemini_bad("* GenerateContentRequest.contents: contents is not specified")
    count = _camel_get(config, "candidateCount", 1)
    if count != 1:
        return _gemini_bad("Multiple candidates is not enabled for this model.")
    ratio = _camel_get(image, "aspectRatio", None)
    if ratio is not None and ratio not in GEMINI_ASPECT_RATIOS | extra_ratios:
        return _gemini_bad(f"Unsupported aspect ratio: {ratio}.")
    size = _camel_get(image, "imageSize", None)
    if size is not None and (sizes is None or size not in sizes):
        return _gemini_bad(f"Unsupported image size for {model}: {size}.")
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_get(fields: Mapping[str, Any], name: str, default: Any) -> Any:
    for key, value in fields.items():
        if _camel(key) == name:
            return value
    return default


def _gemini_bad(message: str) -> Refusal:
    return _gemini_error(400, "INVALID_ARGUMENT", message)


def _gemini_error(code: int, status: str, message: str) -> Refusal:
    return code, vendor_payloads.gemini_error(code, status, message)


def gemini_mime_type(model: str) -> str:
    """What the model's images come as (PNG for 2.5 flash, JPEG for the 3.x family)."""
    return GEMINI_MODELS.get(model, (None, frozenset(), "image/png"))[2]
