"""Retries, backoff, fallback, safety blocks, junk and outages through `POST /image-gen`."""

from __future__ import annotations

import base64
import json
import logging
import random
from decimal import Decimal

import pytest
import requests
from django.conf import settings as django_settings

from conftest import S3_BUCKET, new_uuid
from imagegen import services
from imagegen.breaker import CircuitBreaker
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads

pytestmark = pytest.mark.django_db

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8"/></svg>'
ALL_ATTEMPTS = 3  # IMAGEGEN_PROVIDER_ATTEMPTS in base settings


def post(api, project, **fields):
    body = {
        "visual_prompt": "A lighthouse on a rocky cliff at dusk",
        "art_style": "documentary photograph",
        "uuid": new_uuid(),
        "projectId": project.id,
        "model": "recraft-ai",
        **fields,
    }
    return api.post("/image-gen", body, format="json")


def attempts_of(response) -> list:
    return list(GeneratedImage.objects.get(pk=response.json()["id"]).attempts.all())


def outcomes(response) -> list[tuple[str, str]]:
    return [(attempt.provider, attempt.outcome) for attempt in attempts_of(response)]


def stored_keys(s3_client, project) -> list[str]:
    listing = s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"images/{project.id}/")
    return [item["Key"] for item in listing.get("Contents", [])]


def recraft_with(data: bytes) -> dict:
    return vendor_payloads.recraft_success(data)


def second_gemini(name: str = "google-backup", model: str = "gemini-3-pro-image") -> dict:
    return {
        name: {
            "BACKEND": "imagegen.providers.google.GoogleImageProvider",
            "OPTIONS": {
                "api_key": "test-gemini-key",
                "base_url": django_settings.GEMINI_TEST_URL,
                "model": model,
                "prices": django_settings.GEMINI_IMAGE_TOKEN_PRICES,
            },
        }
    }


def backup_url(model: str = "gemini-3-pro-image") -> str:
    return f"{django_settings.GEMINI_TEST_URL}/models/{model}:generateContent"


# ---------------------------------------------------------------------------------------------
# Retries on the same provider.
# ---------------------------------------------------------------------------------------------
RETRYABLE_RECRAFT_FAULTS = [
    pytest.param((408, b"request timeout"), "unavailable", id="408"),
    pytest.param((429, b"too many requests"), "rate_limited", id="429"),
    pytest.param((500, b"internal"), "unavailable", id="500"),
    pytest.param((502, b"<html>bad gateway</html>"), "unavailable", id="502"),
    pytest.param((503, b"unavailable"), "unavailable", id="503"),
    pytest.param((504, b"gateway timeout"), "unavailable", id="504"),
    pytest.param((200, requests.ConnectionError("reset")), "unavailable", id="connection"),
    pytest.param((200, requests.ConnectTimeout("connect")), "timeout", id="connect-timeout"),
    pytest.param((200, requests.ReadTimeout("read")), "timeout", id="read-timeout"),
    pytest.param((200, recraft_with(b"not an image")), "bad_output", id="junk-bytes"),
    pytest.param((200, {"data": []}), "bad_output", id="wrong-json"),
]


@pytest.mark.parametrize(("fault", "outcome"), RETRYABLE_RECRAFT_FAULTS)
def test_retryable_fault_is_retried_on_the_same_provider(
    api, project, vendors, no_sleep, fault, outcome
):
    vendors.recraft(*fault)
    vendors.recraft()

    response = post(api, project)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["model"], body["message"]) == ("recraft-ai", "Image generated successfully")
    assert outcomes(response) == [("recraft-ai", outcome), ("recraft-ai", "succeeded")]
    assert (vendors.calls("recraft"), vendors.calls("gemini")) == (2, 0)
    assert len(no_sleep) == 1


@pytest.mark.parametrize("reason", ["NO_IMAGE", "IMAGE_OTHER"])
def test_google_answer_without_an_image_is_retried_on_google(
    api, project, vendors, no_sleep, reason
):
    vendors.gemini(body=vendor_payloads.gemini_finished_without_image(reason, content={}))
    vendors.gemini()

    response = post(api, project, model="google-imagen")

    assert response.status_code == 201
    assert outcomes(response) == [
        ("google-imagen", "no_image"),
        ("google-imagen", "succeeded"),
    ]
    assert vendors.calls("recraft") == 0


def google_only(settings) -> None:
    settings.IMAGEGEN_PROVIDERS = {"google-imagen": settings.IMAGEGEN_PROVIDERS["google-imagen"]}


def text_only_answer() -> dict:
    """What Gemini answers a vague prompt: a candidate that finished normally, with words only."""
    answer = vendor_payloads.gemini_finished_without_image("STOP")
    answer["candidates"][0]["content"] = {"role": "model", "parts": [{"text": "Hello!"}]}
    return answer


def test_google_answering_without_an_image_is_retried_once_then_falls_back(
    api, project, vendors, no_sleep
):
    vendors.gemini(body=text_only_answer())
    vendors.gemini(body=text_only_answer())
    vendors.recraft()

    response = post(api, project, model="google-imagen")

    assert response.status_code == 201, response.json()
    assert outcomes(response) == [
        ("google-imagen", "no_image"),
        ("google-imagen", "no_image"),
        ("recraft-ai", "succeeded"),
    ]
    assert "google-imagen no image" in response.json()["message"]


@pytest.mark.parametrize("reason", ["NO_IMAGE", "STOP"])
def test_no_image_from_every_provider_is_a_422_naming_the_prompt(
    api, project, vendors, no_sleep, settings, reason
):
    google_only(settings)
    answer = text_only_answer() if reason == "STOP" else None
    for _ in range(ALL_ATTEMPTS):
        vendors.gemini(
            body=answer or vendor_payloads.gemini_finished_without_image(reason, content={})
        )

    response = post(api, project, model="google-imagen")

    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["code"] == "no_image"
    assert body["message"].startswith("No provider drew an image for this prompt (google-imagen:")
    assert "Describe the picture more concretely" in body["message"]
    row = GeneratedImage.objects.get(pk=body["id"])
    assert (row.status, row.error_code) == ("failed", "no_image")
    assert vendors.calls("gemini") == 2  # one retry, not IMAGEGEN_PROVIDER_ATTEMPTS
    assert len(no_sleep) == 1


def test_two_imageless_answers_end_the_retries_whatever_came_between(
    api, project, vendors, no_sleep, settings
):
    google_only(settings)
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 5
    vendors.gemini(body=text_only_answer())
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE", "The model is overloaded"))
    vendors.gemini(body=text_only_answer())

    response = post(api, project, model="google-imagen")

    assert outcomes(response) == [
        ("google-imagen", "no_image"),
        ("google-imagen", "unavailable"),
        ("google-imagen", "no_image"),
    ]


def test_one_users_imageless_prompts_do_not_open_the_circuit_for_everyone(
    api, project, vendors, no_sleep, settings
):
    google_only(settings)
    settings.IMAGEGEN_BREAKER_THRESHOLD = 2
    for _ in range(6):
        vendors.gemini(body=text_only_answer())
    vendors.gemini()

    refused = [post(api, project, model="google-imagen").status_code for _ in range(3)]
    drawn = post(api, project, model="google-imagen")

    assert refused == [422, 422, 422]
    assert CircuitBreaker("google-imagen").state() == "closed"
    assert drawn.status_code == 201, drawn.json()
    assert vendors.calls("gemini") == 7


def test_no_image_with_another_provider_skipped_stays_a_502_worth_retrying(
    api, project, vendors, no_sleep, settings
):
    CircuitBreaker("recraft-ai")._open()
    vendors.gemini(body=text_only_answer())
    vendors.gemini(body=text_only_answer())

    response = post(api, project, model="google-imagen")

    assert response.status_code == 502
    assert response.json()["code"] == "providers_failed"


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_attempts_per_provider_follow_the_setting(
    api, project, vendors, no_sleep, settings, attempts
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = attempts
    for _ in range(attempts):
        vendors.recraft(503, b"unavailable")
    vendors.gemini()

    response = post(api, project)

    assert response.status_code == 201
    assert vendors.calls("recraft") == attempts
    assert len(no_sleep) == attempts - 1


# ---------------------------------------------------------------------------------------------
# Backoff: exponential ceiling, full jitter, the vendor's own wait up to a cap.
# ---------------------------------------------------------------------------------------------
def test_backoff_ceiling_doubles_up_to_the_cap(settings, monkeypatch):
    settings.IMAGEGEN_BACKOFF_BASE = 1.0
    settings.IMAGEGEN_BACKOFF_CAP = 20.0
    monkeypatch.setattr(services.random, "uniform", lambda low, high: (low, high))

    bounds = [services.backoff_delay(attempt, None) for attempt in range(7)]

    assert bounds == [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (0, 20), (0, 20)]


def test_backoff_is_full_jitter_between_zero_and_the_ceiling(settings):
    settings.IMAGEGEN_BACKOFF_BASE = 1.0
    settings.IMAGEGEN_BACKOFF_CAP = 20.0
    random.seed(20261124)

    delays = [services.backoff_delay(3, None) for _ in range(200)]

    assert all(0 <= delay <= 8 for delay in delays)
    assert min(delays) < 1
    assert max(delays) > 7


@pytest.mark.parametrize(
    ("cap", "retry_after", "expected"), [(30.0, 7.0, 7.0), (30.0, 120.0, 30.0), (5.0, 7.0, 5.0)]
)
def test_vendor_wait_is_honoured_up_to_the_cap(settings, cap, retry_after, expected):
    settings.IMAGEGEN_RETRY_AFTER_CAP = cap

    assert services.backoff_delay(0, retry_after) == expected


@pytest.mark.parametrize(
    ("vendor", "fault", "wait"),
    [
        ("recraft", (429, b"slow down", {"Retry-After": "7"}), 7.0),
        ("recraft", (503, b"maintenance", {"Retry-After": "120"}), 10.0),
        (
            "gemini",
            (
                429,
                vendor_payloads.gemini_error(
                    429, "RESOURCE_EXHAUSTED", details=[vendor_payloads.gemini_retry_info("17s")]
                ),
                {},
            ),
            10.0,
        ),
        (
            "gemini",
            (
                429,
                vendor_payloads.gemini_error(
                    429, "RESOURCE_EXHAUSTED", details=[vendor_payloads.gemini_retry_info("2.5s")]
                ),
                {},
            ),
            2.5,
        ),
    ],
)
def test_pipeline_waits_what_the_vendor_asks_up_to_the_cap(
    api, project, vendors, no_sleep, settings, vendor, fault, wait
):
    settings.IMAGEGEN_RETRY_AFTER_CAP = 10.0
    status, body, headers = fault
    getattr(vendors, vendor)(status, body, headers=headers)
    getattr(vendors, vendor)()

    response = post(api, project, model="recraft-ai" if vendor == "recraft" else "google-imagen")

    assert response.status_code == 201
    assert no_sleep == [wait]


def test_waits_between_retries_grow_with_jitter(api, project, vendors, no_sleep, settings):
    settings.IMAGEGEN_BACKOFF_BASE = 1.0
    settings.IMAGEGEN_BACKOFF_CAP = 20.0
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(503, b"unavailable")
    vendors.gemini()

    post(api, project)

    assert len(no_sleep) == ALL_ATTEMPTS - 1
    assert 0 <= no_sleep[0] <= 1
    assert 0 <= no_sleep[1] <= 2


# ---------------------------------------------------------------------------------------------
# Fallback to the other provider.
# ---------------------------------------------------------------------------------------------
def test_exhausted_provider_hands_over_and_the_answer_says_so(api, project, vendors, no_sleep):
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(503, b"unavailable")
    vendors.gemini()

    response = post(api, project)

    assert response.status_code == 201
    body = response.json()
    assert body["model"] == "google-imagen"
    assert body["provider_model"] == "gemini-2.5-flash-image"
    expected = (
        "Image generated successfully by google-imagen after fallback (recraft-ai unavailable)"
    )
    assert body["message"] == expected
    image = GeneratedImage.objects.get(pk=body["id"])
    assert (image.message, image.model, image.status) == (expected, "google-imagen", "succeeded")
    assert outcomes(response) == [("recraft-ai", "unavailable")] * ALL_ATTEMPTS + [
        ("google-imagen", "succeeded")
    ]


def test_fallback_message_names_each_kind_of_failure_once(api, project, vendors, no_sleep):
    vendors.recraft(429, b"slow down")
    vendors.recraft(503, b"unavailable")
    vendors.recraft(503, b"unavailable")
    vendors.gemini()

    response = post(api, project)

    assert response.json()["message"].endswith("(recraft-ai rate limited, unavailable)")


@pytest.mark.parametrize(
    ("first", "fault"),
    [
        ("recraft-ai", (401, b"401 request unauthorized")),
        ("recraft-ai", (403, b"forbidden")),
        ("google-imagen", (400, vendor_payloads.gemini_invalid_key())),
        ("google-imagen", (403, vendor_payloads.gemini_error(403, "PERMISSION_DENIED"))),
    ],
)
def test_misconfigured_provider_hands_over_at_once(api, project, vendors, no_sleep, first, fault):
    failing, other = ("recraft", "gemini") if first == "recraft-ai" else ("gemini", "recraft")
    getattr(vendors, failing)(*fault)
    getattr(vendors, other)()

    response = post(api, project, model=first)

    assert response.status_code == 201
    assert response.json()["model"] != first
    assert f"{first} credentials" in response.json()["message"]
    assert vendors.calls(failing) == 1
    assert no_sleep == []


def test_request_the_vendor_calls_wrong_is_not_retried(api, project, vendors, no_sleep):
    vendors.recraft(400, {"code": "invalid_size", "message": "size is invalid"})
    vendors.gemini()

    response = post(api, project)

    assert response.status_code == 201
    assert outcomes(response)[0] == ("recraft-ai", "rejected")
    assert vendors.calls("recraft") == 1


# ---------------------------------------------------------------------------------------------
# Safety blocks: explain, never hammer, fall back at most once.
# ---------------------------------------------------------------------------------------------
def test_block_is_not_retried_and_falls_back_once(api, project, vendors, no_sleep):
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked("PROHIBITED_CONTENT"))
    vendors.recraft()

    response = post(api, project, model="google-imagen")

    assert response.status_code == 201
    assert response.json()["model"] == "recraft-ai"
    assert "google-imagen blocked: PROHIBITED_CONTENT" in response.json()["message"]
    assert (vendors.calls("gemini"), vendors.calls("recraft")) == (1, 1)


def test_block_with_fallback_off_is_a_422_naming_the_reason(
    api, project, vendors, no_sleep, settings, s3_client
):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    vendors.gemini(
        body=vendor_payloads.gemini_finished_without_image("IMAGE_SAFETY", "Depicts a real person.")
    )

    response = post(api, project, model="google-imagen")

    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "content_blocked"
    assert "blocked" in body["message"]
    assert "IMAGE_SAFETY: Depicts a real person." in body["message"]
    assert vendors.calls("recraft") == 0
    image = GeneratedImage.objects.get(pk=body["id"])
    assert (image.status, image.error_code) == ("failed", "content_blocked")
    assert image.block_reason == "IMAGE_SAFETY: Depicts a real person."
    assert image.s3_key == ""
    assert stored_keys(s3_client, project) == []


def test_block_on_the_fallback_too_is_a_422(api, project, vendors, no_sleep, settings, s3_client):
    settings.IMAGEGEN_PROVIDERS = {
        "google-imagen": settings.IMAGEGEN_PROVIDERS["google-imagen"],
        **second_gemini(),
    }
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked("SAFETY"))
    vendors.mock.add("POST", backup_url(), json=vendor_payloads.gemini_prompt_blocked("BLOCKLIST"))

    response = post(api, project, model="google-imagen")

    assert response.status_code == 422
    assert "(BLOCKLIST)" in response.json()["message"]
    assert outcomes(response) == [
        ("google-imagen", "blocked"),
        ("google-backup", "blocked"),
    ]
    assert stored_keys(s3_client, project) == []


def test_after_a_block_only_one_more_provider_is_asked(api, project, vendors, no_sleep, settings):
    settings.IMAGEGEN_PROVIDERS = {
        "google-imagen": settings.IMAGEGEN_PROVIDERS["google-imagen"],
        **second_gemini(),
        "recraft-ai": settings.IMAGEGEN_PROVIDERS["recraft-ai"],
    }
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked("SAFETY"))
    for _ in range(ALL_ATTEMPTS):
        vendors.mock.add("POST", backup_url(), status=503, json={})
    vendors.recraft()

    response = post(api, project, model="google-imagen")

    assert response.status_code == 422
    assert vendors.calls("recraft") == 0


# ---------------------------------------------------------------------------------------------
# Junk answers are provider failures, never stored objects.
# ---------------------------------------------------------------------------------------------
NOISY_PNG = vendor_payloads.image_bytes("PNG", (400, 400))

JUNK = [
    pytest.param(recraft_with(b"definitely not an image"), id="not-an-image"),
    pytest.param(recraft_with(SVG), id="svg"),
    pytest.param(recraft_with(b""), id="zero-bytes"),
    pytest.param(recraft_with(NOISY_PNG), id="over-the-cap"),
    pytest.param({"created": 1, "data": [{"url": "https://img.recraft.ai/x.webp"}]}, id="url"),
    pytest.param(b"<html>OK</html>", id="not-json"),
    pytest.param(b"[" * 200_000, id="nested-too-deep"),
]


@pytest.mark.parametrize("junk", JUNK)
def test_junk_is_retried_then_handed_over_and_never_stored(
    api, project, vendors, no_sleep, settings, s3_client, junk
):
    settings.IMAGEGEN_MAX_IMAGE_BYTES = len(NOISY_PNG) - 1
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(200, junk)
    gemini_png = vendor_payloads.image_bytes("PNG", (32, 32))
    vendors.gemini(body=vendor_payloads.gemini_success(gemini_png))

    response = post(api, project)

    assert response.status_code == 201
    body = response.json()
    assert body["model"] == "google-imagen"
    assert (body["width"], body["height"]) == (32, 32)
    assert outcomes(response)[:ALL_ATTEMPTS] == [("recraft-ai", "bad_output")] * ALL_ATTEMPTS
    assert stored_keys(s3_client, project) == [body["s3_key"]]


def test_an_image_that_does_not_decode_keeps_the_vendors_usage(api, project, vendors, no_sleep):
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(body=vendor_payloads.recraft_success(b"not an image", credits=35))

    response = post(api, project)

    recraft_attempts = attempts_of(response)[:ALL_ATTEMPTS]
    assert [(a.outcome, a.cost_usd, a.usage) for a in recraft_attempts] == [
        ("bad_output", Decimal("0.035"), {"credits": 35})
    ] * ALL_ATTEMPTS


def recraft_answer_with_credits(literal: str) -> bytes:
    """Recraft's 200 with `credits` written as `literal`, which may be no JSON at all (NaN)."""
    answer = json.dumps({**vendor_payloads.recraft_success(), "credits": "CREDITS"})
    return answer.replace('"CREDITS"', literal).encode()


def gemini_answer_with_image_tokens(literal: str) -> bytes:
    answer = vendor_payloads.gemini_success(image_tokens=1290)
    answer["usageMetadata"]["candidatesTokensDetails"][0]["tokenCount"] = "TOKENS"
    return json.dumps(answer).replace('"TOKENS"', literal).encode()


@pytest.mark.parametrize(
    ("vendor", "answer", "usage_kept"),
    [
        pytest.param("recraft", recraft_answer_with_credits("NaN"), False, id="credits-NaN"),
        pytest.param("recraft", recraft_answer_with_credits("Infinity"), False, id="credits-inf"),
        pytest.param("recraft", recraft_answer_with_credits("1e999"), False, id="credits-1e999"),
        pytest.param("recraft", recraft_answer_with_credits("1e300"), True, id="credits-1e300"),
        pytest.param(
            "recraft", recraft_answer_with_credits("1" * 20), True, id="credits-20-digits"
        ),
        pytest.param("recraft", recraft_answer_with_credits("-40"), True, id="credits-negative"),
        pytest.param("gemini", gemini_answer_with_image_tokens("NaN"), False, id="tokens-NaN"),
        pytest.param(
            "gemini", gemini_answer_with_image_tokens("1" * 31), True, id="tokens-31-digits"
        ),
        pytest.param(
            "gemini", gemini_answer_with_image_tokens("-5000"), True, id="tokens-negative"
        ),
    ],
)
def test_usage_figures_no_bill_has_cost_nothing_and_the_image_is_kept(
    api, project, vendors, s3_client, vendor, answer, usage_kept
):
    getattr(vendors, vendor)(200, answer, content_type="application/json")

    response = post(
        api, project, model={"recraft": "recraft-ai", "gemini": "google-imagen"}[vendor]
    )

    assert response.status_code == 201, response.json()
    assert response.json()["cost_usd"] == 0
    (attempt,) = attempts_of(response)
    assert (attempt.outcome, attempt.cost_usd) == ("succeeded", Decimal(0))
    assert bool(attempt.usage) is usage_kept
    assert stored_keys(s3_client, project) == [response.json()["s3_key"]]


def test_a_retry_after_of_nan_is_no_wait(api, project, vendors, no_sleep, settings):
    settings.IMAGEGEN_BACKOFF_BASE = 0.5
    vendors.recraft(429, b"slow down", headers={"Retry-After": "NaN"})
    vendors.recraft()

    response = post(api, project)

    assert response.status_code == 201
    assert outcomes(response) == [("recraft-ai", "rate_limited"), ("recraft-ai", "succeeded")]
    (wait,) = no_sleep
    assert 0 <= wait <= 0.5


# ---------------------------------------------------------------------------------------------
# Everything down.
# ---------------------------------------------------------------------------------------------
def test_all_providers_down_is_a_502_with_the_failure_recorded(
    api, project, vendors, no_sleep, s3_client
):
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(503, b"unavailable")
        vendors.gemini(500, vendor_payloads.gemini_error(500, "INTERNAL"))

    response = post(api, project)

    assert response.status_code == 502
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "providers_failed"
    assert body["message"].startswith("Every image provider failed")
    assert "Try again later" in body["message"]
    image = GeneratedImage.objects.get(pk=body["id"])
    assert (image.status, image.error_code, image.message) == (
        "failed",
        "providers_failed",
        body["message"],
    )
    assert image.attempts.count() == 2 * ALL_ATTEMPTS
    assert image.s3_key == ""
    assert stored_keys(s3_client, project) == []


def test_every_attempt_timing_out_is_a_504(api, project, vendors, no_sleep, s3_client):
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(body=requests.ReadTimeout("read"))
        vendors.gemini(body=requests.ConnectTimeout("connect"))

    response = post(api, project)

    assert response.status_code == 504
    body = response.json()
    assert (body["success"], body["code"]) == (False, "providers_timed_out")
    assert "timed out" in body["message"]
    assert GeneratedImage.objects.get(pk=body["id"]).status == "failed"
    assert stored_keys(s3_client, project) == []


def test_timeouts_mixed_with_other_failures_are_a_502(api, project, vendors, no_sleep):
    for _ in range(ALL_ATTEMPTS):
        vendors.recraft(body=requests.ReadTimeout("read"))
        vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE"))

    assert post(api, project).status_code == 502


def test_no_configured_provider_is_a_502_that_says_so(api, project, settings):
    settings.IMAGEGEN_PROVIDERS = {}

    response = post(api, project, model="auto")

    assert response.status_code == 502
    assert "No image provider is configured" in response.json()["message"]


# ---------------------------------------------------------------------------------------------
# The audit trail and the bill.
# ---------------------------------------------------------------------------------------------
def test_each_attempt_is_recorded_with_the_vendors_figures(api, project, vendors, no_sleep):
    vendors.recraft(429, b"slow down", headers={"Retry-After": "1"})
    vendors.recraft(503, b"unavailable")
    vendors.recraft(body=requests.ReadTimeout("read"))
    vendors.gemini(body=vendor_payloads.gemini_success(image_tokens=1290, response_id="resp-9"))

    response = post(api, project)

    attempts = attempts_of(response)
    assert [
        (a.provider, a.provider_model, a.outcome, a.http_status, a.vendor_request_id, a.cost_usd)
        for a in attempts
    ] == [
        ("recraft-ai", "recraftv4_1", "rate_limited", 429, "", Decimal(0)),
        ("recraft-ai", "recraftv4_1", "unavailable", 503, "", Decimal(0)),
        ("recraft-ai", "recraftv4_1", "timeout", None, "", Decimal(0)),
        ("google-imagen", "gemini-2.5-flash-image", "succeeded", 200, "resp-9", Decimal("0.0387")),
    ]
    assert all(attempt.latency_ms >= 0 for attempt in attempts)
    assert "Recraft answered HTTP 503" in attempts[1].detail
    assert [attempt.usage for attempt in attempts] == [
        {},
        {},
        {},
        vendor_payloads.gemini_success(image_tokens=1290)["usageMetadata"],
    ]


def test_blocked_attempt_keeps_the_vendors_request_id_and_usage(
    api, project, vendors, no_sleep, settings
):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked())

    response = post(api, project, model="google-imagen")

    (attempt,) = attempts_of(response)
    assert (attempt.outcome, attempt.http_status, attempt.vendor_request_id) == (
        "blocked",
        200,
        "gm-blocked-1",
    )
    assert attempt.usage == {"promptTokenCount": 12, "totalTokenCount": 12}


def test_cost_shows_on_the_image_and_adds_up_on_the_project(api, project, vendors):
    vendors.recraft(body=vendor_payloads.recraft_success(credits=35, image_id="rc-1"))
    vendors.gemini(body=vendor_payloads.gemini_success(image_tokens=1290))

    recraft_answer = post(api, project).json()
    gemini_answer = post(api, project, model="google-imagen").json()

    assert recraft_answer["cost_usd"] == pytest.approx(0.035)
    assert gemini_answer["cost_usd"] == pytest.approx(0.0387)
    attempt = GeneratedImage.objects.get(pk=recraft_answer["id"]).attempts.get()
    assert (attempt.vendor_request_id, attempt.cost_usd) == ("rc-1", Decimal("0.035"))
    assert attempt.usage == {"credits": 35}
    listed = api.get("/image-gen", {"id": gemini_answer["id"]}).json()
    assert listed[0]["costUsd"] == pytest.approx(0.0387)
    total = api.get(f"/projects/{project.id}").json()["totalCostUsd"]
    assert total == pytest.approx(0.0737)


# ---------------------------------------------------------------------------------------------
# Logs: one structured line per attempt, never a key or an image.
# ---------------------------------------------------------------------------------------------
def test_each_attempt_logs_one_line_without_keys_or_payloads(
    api, project, vendors, no_sleep, caplog
):
    caplog.set_level(logging.DEBUG)
    recraft_answer = vendor_payloads.recraft_success()
    gemini_answer = vendor_payloads.gemini_success()
    vendors.recraft(503, b"unavailable")
    vendors.recraft(200, recraft_with(b"junk"))
    vendors.recraft(401, b"401 request unauthorized")
    vendors.gemini(body=gemini_answer)

    response = post(api, project)

    image_id = response.json()["id"]
    lines = [r for r in caplog.records if r.getMessage().startswith("provider_attempt ")]
    assert [(r.levelname, r.name) for r in lines] == [
        ("WARNING", "imagegen.services"),  # 503: the vendor's trouble, retried
        ("WARNING", "imagegen.services"),  # junk: the same
        ("ERROR", "imagegen.services"),  # 401: ours, every call fails until someone acts
        ("INFO", "imagegen.services"),
    ]
    first = lines[0].getMessage()
    for field in (
        f"image={image_id}",
        "provider=recraft-ai",
        "model=recraftv4_1",
        "outcome=unavailable",
        "status=503",
        "latency_ms=",
    ):
        assert field in first
    assert "outcome=succeeded status=200" in lines[-1].getMessage()
    secrets = [
        "test-recraft-key",
        "test-gemini-key",
        recraft_answer["data"][0]["b64_json"][:40],
        gemini_answer["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"][:40],
        base64.b64encode(b"junk").decode(),
    ]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in logged


def test_a_request_the_vendor_calls_malformed_is_logged_as_an_error(
    api, project, vendors, no_sleep, caplog
):
    vendors.recraft(400, {"code": "invalid_prompt", "message": "bad field"})
    vendors.gemini()

    post(api, project)

    (line,) = [r for r in caplog.records if "outcome=rejected" in r.getMessage()]
    assert line.levelname == "ERROR"


def test_rejected_requests_do_not_open_the_circuit(api, project, vendors, no_sleep, settings):
    settings.IMAGEGEN_BREAKER_THRESHOLD = 1
    vendors.recraft(400, {"code": "invalid_prompt", "message": "bad field"})
    vendors.gemini()

    post(api, project)

    assert CircuitBreaker("recraft-ai").state() == "closed"


def test_timeouts_with_the_rest_circuit_skipped_is_a_504(api, project, vendors, no_sleep, settings):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    CircuitBreaker("google-imagen")._open()
    vendors.recraft(body=requests.exceptions.ReadTimeout("read timed out"))

    response = post(api, project)

    assert response.status_code == 504
    assert response.json()["code"] == "providers_timed_out"


# ---------------------------------------------------------------------------------------------
# A fault of ours: the row is failed, not left running for a lease.
# ---------------------------------------------------------------------------------------------
def test_an_unexpected_error_is_a_500_that_leaves_the_uuid_free_to_retry(
    api, project, vendors, monkeypatch
):
    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    real = services.call_providers
    monkeypatch.setattr(services, "call_providers", crash)

    crashed = post(api, project, uuid="segment-crash")

    row = GeneratedImage.objects.get(uuid="segment-crash")
    assert crashed.status_code == 500
    assert (row.status, row.error_code) == ("failed", "internal")
    monkeypatch.setattr(services, "call_providers", real)
    vendors.recraft()
    assert post(api, project, uuid="segment-crash").status_code == 201
