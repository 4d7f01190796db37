"""`manage.py imagegen_providers`: each provider's configuration, circuit state and health."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from config.commands import OperatorCommand
from imagegen import services
from imagegen.breaker import CircuitBreaker
from imagegen.providers.base import GenerationRequest, ImageProvider, ProviderError
from imagegen.providers.registry import get_providers

PING_REQUEST = GenerationRequest(prompt="A plain light grey square.", aspect_ratio="1:1")


class Command(OperatorCommand):
    help = (
        "List the configured image providers in fallback order: backend, upstream model, "
        "endpoint, API key (masked), the content categories routed to each, and its circuit "
        "breaker state (closed = healthy, open = skipped after repeated failures, half-open = "
        "the next call is a trial). With --ping, make one real minimal generation per provider "
        "(a vendor call that is billed) and report its outcome and latency. Exits non-zero when "
        "no provider is usable (none configured, all circuits open, or with --ping all failed)."
    )
    requires_database = False  # configuration, the breakers in the cache, and the vendors

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ping",
            action="store_true",
            help="Call each provider once with a tiny prompt (billed by the vendor).",
        )

    def handle(self, *args: Any, ping: bool, **options: Any) -> None:
        try:
            providers = get_providers()
        except ImproperlyConfigured as exc:
            raise CommandError(f"{exc}. Fix IMAGEGEN_PROVIDERS (see manage.py check).") from exc
        if not providers:
            raise CommandError(
                "No image provider is configured: set RECRAFT_API_KEY and/or GEMINI_API_KEY "
                "(or run with DJANGO_DEBUG=1 for the offline sketch provider)."
            )
        usable = [name for name, provider in providers.items() if self.report(provider, ping)]
        summary = f"{len(usable)} of {len(providers)} providers usable"
        if not usable:
            raise CommandError(f"{summary}: image generation would fail.")
        self.stdout.write(self.style.SUCCESS(f"{summary}: {', '.join(usable)}."))

    def report(self, provider: ImageProvider, ping: bool) -> bool:
        """Print one provider's block; whether it can take a generation now."""
        description = provider.describe()
        self.stdout.write(self.style.MIGRATE_HEADING(f"{provider.name} ({description['backend']})"))
        for key, value in description.items():
            if key not in ("name", "backend"):
                self.stdout.write(f"  {key + ':':<10} {value}")
        categories = [
            category
            for category, route in settings.IMAGEGEN_ROUTES.items()
            if route == provider.name
        ]
        self.stdout.write(f"  {'routes:':<10} {', '.join(categories) or '(fallback only)'}")
        breaker = CircuitBreaker(provider.name)
        state = breaker.state()
        if state == "open":
            state += f" (next trial in {breaker.seconds_until_trial():.0f} s)"
        self.stdout.write(f"  {'circuit:':<10} {state}")
        usable = breaker.state() != "open"
        if ping:
            usable = self.ping(provider) and usable
        return usable

    def ping(self, provider: ImageProvider) -> bool:
        """One real generation, converted as the pipeline would; whether it worked."""
        started = time.monotonic()
        try:
            success = services.provider_attempt(provider, PING_REQUEST)
        except ProviderError as exc:
            outcome, ok = f"FAILED ({exc.outcome}): {exc.message}", False
        else:
            jpeg, result = success.jpeg, success.result
            outcome, ok = (
                f"ok: a {jpeg.width}x{jpeg.height} {jpeg.source_format} image from "
                f"{result.provider_model}, cost ${result.cost_usd}",
                True,
            )
        elapsed = int((time.monotonic() - started) * 1000)
        style = self.style.SUCCESS if ok else self.style.ERROR
        self.stdout.write(style(f"  {'ping:':<10} {outcome} ({elapsed} ms)"))
        return ok
