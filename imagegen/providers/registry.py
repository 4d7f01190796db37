"""The provider registry: `IMAGEGEN_PROVIDERS` maps route names to dotted backends + options."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from imagegen.providers.base import ImageProvider


@cache
def get_providers() -> dict[str, ImageProvider]:
    """Every configured provider by route name, in settings order (the fallback order).

    Raises `ImproperlyConfigured` for an unknown backend or bad options, like Django's STORAGES.
    """
    providers: dict[str, ImageProvider] = {}
    for name, entry in settings.IMAGEGEN_PROVIDERS.items():
        backend = entry.get("BACKEND", "")
        try:
            provider_class = import_string(backend)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"Could not find provider backend {backend!r} for {name!r}"
            ) from exc
        try:
            providers[name] = provider_class(name=name, **entry.get("OPTIONS", {}))
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"Provider {name!r} is misconfigured: {exc}") from exc
    return providers


def get_provider(name: str) -> ImageProvider:
    """One provider by route name; `KeyError` when that route is not configured."""
    return get_providers()[name]


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: object) -> None:
    if setting in {"IMAGEGEN_PROVIDERS", "DEBUG"}:
        get_providers.cache_clear()
