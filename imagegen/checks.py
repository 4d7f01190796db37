"""System checks: missing or unusable keys, unknown backends, no usable provider, bad routes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from imagegen.providers.registry import get_providers


@register()
def check_providers(app_configs: Any = None, **kwargs: Any) -> list:
    """`imagegen.E001`-`E005`, `W001`: the provider registry and the route table are usable."""
    messages: list = []
    for name, entry in settings.IMAGEGEN_PROVIDERS.items():
        options = entry.get("OPTIONS", {})
        if "api_key" in options and not options["api_key"]:
            messages.append(
                Error(
                    f"Provider {name!r} is configured without an API key.",
                    hint="Set RECRAFT_API_KEY / GEMINI_API_KEY, or remove the provider.",
                    id="imagegen.E001",
                )
            )
        elif any(char.isspace() or not char.isprintable() for char in options.get("api_key", "")):
            messages.append(
                Error(
                    f"Provider {name!r} has an API key with a space, line break or other "
                    "control character in it; no vendor accepts such a header.",
                    hint="Copy the key again without the surrounding whitespace (a key file's "
                    "trailing newline, say).",
                    id="imagegen.E005",
                )
            )
    try:
        providers = get_providers()
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), hint="Check IMAGEGEN_PROVIDERS.", id="imagegen.E002"))
        return messages
    if not providers:
        messages.append(
            Error(
                "No image provider is configured: every generation would fail.",
                hint="Set RECRAFT_API_KEY and/or GEMINI_API_KEY (or DJANGO_DEBUG=1 for the offline "
                "sketch provider).",
                id="imagegen.E003",
            )
        )
    for category, route in settings.IMAGEGEN_ROUTES.items():
        # Local debug runs use whatever is configured (often the offline sketch alone).
        if providers and route not in providers and not settings.DEBUG:
            messages.append(
                Warning(
                    f"Category {category!r} routes to {route!r}, which is not configured; "
                    "those prompts go to the next configured provider.",
                    hint=f"Configure {route!r} or point IMAGEGEN_ROUTES[{category!r}] elsewhere.",
                    id="imagegen.W001",
                )
            )
    if settings.IMAGEGEN_DEFAULT_CATEGORY not in settings.IMAGEGEN_ROUTES:
        messages.append(
            Error(
                f"IMAGEGEN_DEFAULT_CATEGORY {settings.IMAGEGEN_DEFAULT_CATEGORY!r} is not a "
                "category of IMAGEGEN_ROUTES.",
                id="imagegen.E004",
            )
        )
    return messages


@register(deploy=True)
def check_images_are_served(app_configs: Any = None, **kwargs: Any) -> list:
    """`imagegen.W002` (`check --deploy`): images on the file system with DEBUG off, where
    `imageUrl` points at MEDIA_URL, which this app serves only in a debug run."""
    if settings.DEBUG or settings.AWS_STORAGE_BUCKET_NAME:
        return []
    return [
        Warning(
            "Images are stored on the file system (no AWS_STORAGE_BUCKET_NAME) with DEBUG off: "
            f"their imageUrl links ({settings.MEDIA_URL}...) are served by this app only in a "
            "debug run.",
            hint="Set AWS_STORAGE_BUCKET_NAME, or have the web server in front serve MEDIA_ROOT "
            "at MEDIA_URL.",
            id="imagegen.W002",
        )
    ]
