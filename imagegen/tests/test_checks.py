"""Configuration problems surface as system checks; the offline sketch stays out of production."""

from __future__ import annotations

import runpy

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured

from config.settings import base as base_settings
from imagegen.checks import check_providers
from imagegen.providers.base import GenerationRequest
from imagegen.providers.offline import OfflineSketchProvider
from imagegen.providers.registry import get_providers

pytestmark = pytest.mark.django_db

OFFLINE = {"offline-sketch": {"BACKEND": "imagegen.providers.offline.OfflineSketchProvider"}}


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def with_key(settings, name: str, api_key: str) -> dict:
    entry = settings.IMAGEGEN_PROVIDERS[name]
    return {**entry, "OPTIONS": {**entry["OPTIONS"], "api_key": api_key}}


def test_the_test_configuration_passes():
    assert check_providers() == []


def test_provider_checks_run_with_djangos_checks(settings):
    settings.IMAGEGEN_PROVIDERS = {}

    messages = [message for message in run_checks() if message.id.startswith("imagegen.")]

    assert ids(messages) == ["imagegen.E003"]


def test_configured_provider_without_a_key_is_an_error(settings):
    settings.IMAGEGEN_PROVIDERS = {
        **settings.IMAGEGEN_PROVIDERS,
        "recraft-ai": with_key(settings, "recraft-ai", ""),
    }

    messages = check_providers()

    assert ids(messages) == ["imagegen.E001"]
    assert isinstance(messages[0], Error)
    assert "'recraft-ai'" in messages[0].msg
    assert "RECRAFT_API_KEY" in messages[0].hint


@pytest.mark.parametrize("api_key", ["rk-secret\n", " rk-secret", "rk\tsecret", "rk\x00secret"])
def test_key_with_whitespace_or_control_characters_is_an_error(settings, api_key):
    settings.IMAGEGEN_PROVIDERS = {
        **settings.IMAGEGEN_PROVIDERS,
        "google-imagen": with_key(settings, "google-imagen", api_key),
    }

    messages = check_providers()

    assert ids(messages) == ["imagegen.E005"]
    assert "'google-imagen'" in messages[0].msg
    assert "secret" not in messages[0].msg + messages[0].hint


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"BACKEND": "imagegen.providers.dalle.DalleProvider"}, "Could not find provider backend"),
        ({"BACKEND": "imagegen.providers.recraft.NoSuchProvider"}, "Could not find provider"),
        (
            {
                "BACKEND": "imagegen.providers.recraft.RecraftProvider",
                "OPTIONS": {"api_key": "k", "colour": "blue"},
            },
            "misconfigured",
        ),
        (
            {
                "BACKEND": "imagegen.providers.recraft.RecraftProvider",
                "OPTIONS": {"api_key": "k", "model": "recraftv3_vector"},
            },
            "SVG",
        ),
    ],
    ids=["unknown-module", "unknown-class", "unknown-option", "vector-model"],
)
def test_unknown_or_unusable_backend_is_an_error(settings, entry, shown):
    settings.IMAGEGEN_PROVIDERS = {**settings.IMAGEGEN_PROVIDERS, "extra": entry}

    messages = check_providers()

    assert ids(messages) == ["imagegen.E002"]
    assert shown in messages[0].msg


def test_no_usable_provider_is_an_error(settings):
    settings.IMAGEGEN_PROVIDERS = {}

    messages = check_providers()

    assert ids(messages) == ["imagegen.E003"]
    assert "every generation would fail" in messages[0].msg


def test_route_to_an_unconfigured_provider_is_a_warning(settings):
    settings.IMAGEGEN_PROVIDERS = {"recraft-ai": settings.IMAGEGEN_PROVIDERS["recraft-ai"]}

    messages = check_providers()

    assert ids(messages) == ["imagegen.W001", "imagegen.W001"]
    assert all(isinstance(message, Warning) for message in messages)
    assert "'google-imagen'" in messages[0].msg


def test_default_category_outside_the_routes_is_an_error(settings):
    settings.IMAGEGEN_DEFAULT_CATEGORY = "surreal"

    assert ids(check_providers()) == ["imagegen.E004"]


# ---------------------------------------------------------------------------------------------
# The offline sketch: local debug runs only.
# ---------------------------------------------------------------------------------------------
def test_offline_sketch_refuses_to_start_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG"):
        OfflineSketchProvider(name="offline-sketch")


def test_offline_sketch_with_debug_off_fails_the_checks(settings):
    settings.DEBUG = False
    settings.IMAGEGEN_PROVIDERS = OFFLINE

    messages = check_providers()

    assert ids(messages) == ["imagegen.E002"]
    assert "DJANGO_DEBUG" in messages[0].msg


def test_offline_sketch_draws_a_real_image_with_debug_on(settings):
    settings.DEBUG = True
    settings.IMAGEGEN_PROVIDERS = OFFLINE

    provider = get_providers()["offline-sketch"]
    result = provider.generate(GenerationRequest(prompt="a fox", aspect_ratio="16:9"), timeout=1)

    assert result.image_bytes.startswith(b"\x89PNG")
    assert check_providers() == []


@pytest.mark.parametrize(
    ("debug", "expected"), [(True, ["offline-sketch"]), (False, [])], ids=["debug", "no-debug"]
)
def test_without_keys_only_debug_gets_the_offline_sketch(monkeypatch, debug, expected):
    monkeypatch.setattr(base_settings, "RECRAFT_API_KEY", "")
    monkeypatch.setattr(base_settings, "GEMINI_API_KEY", "")

    assert list(base_settings.configured_providers(debug=debug)) == expected


def test_keys_configure_the_vendor_providers(monkeypatch):
    monkeypatch.setattr(base_settings, "RECRAFT_API_KEY", "rk")
    monkeypatch.setattr(base_settings, "GEMINI_API_KEY", "gk")

    providers = base_settings.configured_providers(debug=True)

    assert list(providers) == ["recraft-ai", "google-imagen"]
    assert providers["recraft-ai"]["OPTIONS"]["api_key"] == "rk"


SECRET = "production-secret-key-that-is-long-enough-to-pass-the-check-0123456789"


@pytest.fixture
def production_secret(monkeypatch) -> None:
    monkeypatch.setattr(base_settings, "SECRET_KEY", SECRET)


def test_production_settings_refuse_the_offline_sketch(monkeypatch, production_secret):
    monkeypatch.setattr(base_settings, "IMAGEGEN_PROVIDERS", OFFLINE)

    with pytest.raises(ImproperlyConfigured, match="offline sketch"):
        runpy.run_module("config.settings.production")


def test_production_settings_accept_vendor_providers(monkeypatch, settings, production_secret):
    monkeypatch.setattr(base_settings, "IMAGEGEN_PROVIDERS", settings.IMAGEGEN_PROVIDERS)

    production = runpy.run_module("config.settings.production")

    assert production["DEBUG"] is False
    assert list(production["IMAGEGEN_PROVIDERS"]) == ["recraft-ai", "google-imagen"]


@pytest.mark.parametrize(
    ("debug", "bucket", "warned"),
    [(False, "", True), (True, "", False), (False, "a-bucket", False)],
)
def test_deploy_check_warns_when_image_links_lead_nowhere(settings, debug, bucket, warned):
    settings.DEBUG, settings.AWS_STORAGE_BUCKET_NAME = debug, bucket

    messages = run_checks(include_deployment_checks=True)

    assert ("imagegen.W002" in ids(messages)) is warned
