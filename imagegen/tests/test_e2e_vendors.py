"""`POST /image-gen` over real HTTP against the loopback fake vendors, faults and all."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator

import pytest

from imagegen.breaker import CircuitBreaker
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads
from imagegen.testing.fake_vendors import FakeVendorServer, Reply
from imagegen.tests.test_pipeline_faults import SVG, attempts_of, outcomes, post, stored_keys

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as server:
        yield server


def pointed_at(providers: dict, urls: dict[str, str]) -> dict:
    return {
        name: {**entry, "OPTIONS": {**entry["OPTIONS"], "base_url": urls.get(name, "")}}
        for name, entry in providers.items()
    }


@pytest.fixture
def vendors(fake_server, settings) -> FakeVendorServer:
    """The fake vendors, unscripted, with both providers pointed at them."""
    fake_server.reset()
    settings.IMAGEGEN_PROVIDERS = pointed_at(
        settings.IMAGEGEN_PROVIDERS,
        {"recraft-ai": fake_server.recraft_url, "google-imagen": fake_server.gemini_url},
    )
    return fake_server


@pytest.fixture
def unanswered_url(settings) -> Iterator[str]:
    """A port whose accept queue is full: connecting there hangs until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))
        except OSError:
            filler.close()
            break
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/recraft/v1"
    for filler in fillers:
        filler.close()
    listener.close()


def test_generates_over_http_with_each_vendors_auth(api, project, vendors, s3_client):
    recraft = post(api, project)
    google = post(api, project, model="google-imagen")

    assert (recraft.status_code, google.status_code) == (201, 201)
    assert (recraft.json()["model"], google.json()["model"]) == ("recraft-ai", "google-imagen")
    (_, recraft_body, recraft_headers), (_, google_body, google_headers) = vendors.requests
    assert recraft_headers["Authorization"] == "Bearer test-recraft-key"
    assert recraft_body["response_format"] == "b64_json"
    assert google_headers["x-goog-api-key"] == "test-gemini-key"
    assert google_body["generationConfig"]["responseModalities"] == ["IMAGE"]
    assert sorted(stored_keys(s3_client, project)) == sorted(
        [recraft.json()["s3_key"], google.json()["s3_key"]]
    )


def test_gzip_compressed_answer_is_decoded(api, project, vendors):
    answer = json.dumps(vendor_payloads.recraft_success(image_id="rc-gzip")).encode()
    vendors.script(
        "recraft",
        Reply(
            body=gzip.compress(answer),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        ),
    )

    response = post(api, project)

    assert response.status_code == 201
    assert [attempt.vendor_request_id for attempt in attempts_of(response)] == ["rc-gzip"]


def test_falls_back_to_google_when_recraft_is_down(api, project, vendors, settings):
    vendors.script("recraft", *[Reply(status=503, body=b"unavailable")] * 3)

    response = post(api, project)

    assert response.status_code == 201
    assert response.json()["model"] == "google-imagen"
    assert "after fallback (recraft-ai unavailable)" in response.json()["message"]
    assert (vendors.calls("recraft"), vendors.calls("gemini")) == (3, 1)


def test_dropped_connection_is_retried(api, project, vendors):
    vendors.script("recraft", Reply(drop=True))

    response = post(api, project)

    assert response.json()["model"] == "recraft-ai"
    assert outcomes(response) == [("recraft-ai", "unavailable"), ("recraft-ai", "succeeded")]


def test_a_one_second_retry_after_is_waited_out(api, project, vendors):
    vendors.script("recraft", Reply(status=429, body=b"slow down", headers={"Retry-After": "1"}))

    response = post(api, project)

    assert response.json()["model"] == "recraft-ai"
    first, second = vendors.arrivals("recraft")
    assert 1.0 <= second - first < 2.0


SLOW_ANSWERS = [
    pytest.param(Reply(body=vendor_payloads.recraft_success(), trickle=0.01), id="trickled-body"),
    pytest.param(
        Reply(body=vendor_payloads.recraft_success(), trickle_headers=0.05), id="trickled-headers"
    ),
    pytest.param(Reply(body=vendor_payloads.recraft_success(), delay=3), id="silent"),
]
# Each of those would hold the call for 3 s or more without the deadline.
DEADLINE_MS = (450, 1000)


@pytest.mark.parametrize("slow", SLOW_ANSWERS)
def test_slow_vendor_is_cut_off_at_the_deadline(api, project, vendors, settings, slow):
    settings.IMAGEGEN_PROVIDER_TIMEOUT = 0.5
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    vendors.script("recraft", slow)

    response = post(api, project)

    assert response.json()["model"] == "google-imagen"
    timed_out = attempts_of(response)[0]
    assert (timed_out.provider, timed_out.outcome) == ("recraft-ai", "timeout")
    assert DEADLINE_MS[0] <= timed_out.latency_ms < DEADLINE_MS[1]


def test_connect_timeout_is_separate_and_short(api, project, vendors, settings, unanswered_url):
    settings.IMAGEGEN_CONNECT_TIMEOUT = 0.2
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    settings.IMAGEGEN_PROVIDERS = pointed_at(
        settings.IMAGEGEN_PROVIDERS,
        {"recraft-ai": unanswered_url, "google-imagen": vendors.gemini_url},
    )

    response = post(api, project)

    assert response.json()["model"] == "google-imagen"
    timed_out = attempts_of(response)[0]
    assert (timed_out.provider, timed_out.outcome) == ("recraft-ai", "timeout")
    # Well under the 1 s the whole call would be allowed.
    assert timed_out.latency_ms < 700


def test_every_vendor_too_slow_is_a_504_and_nothing_is_stored(
    api, project, vendors, settings, s3_client
):
    settings.IMAGEGEN_PROVIDER_TIMEOUT = 0.5
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    vendors.script("recraft", Reply(body=vendor_payloads.recraft_success(), trickle=0.01))
    vendors.script("gemini", Reply(body=vendor_payloads.gemini_success(), delay=3))

    response = post(api, project)

    assert response.status_code == 504
    assert response.json()["success"] is False
    assert "timed out" in response.json()["message"]
    assert [
        (attempt.outcome, DEADLINE_MS[0] <= attempt.latency_ms < DEADLINE_MS[1])
        for attempt in attempts_of(response)
    ] == [("timeout", True), ("timeout", True)]
    assert stored_keys(s3_client, project) == []


def test_answer_over_the_size_cap_is_refused_and_never_stored(
    api, project, vendors, settings, s3_client
):
    settings.IMAGEGEN_MAX_IMAGE_BYTES = 1000
    huge = vendor_payloads.recraft_success(b"\0" * 200_000)
    vendors.script("recraft", *[Reply(body=huge)] * 3)

    response = post(api, project)

    assert response.json()["model"] == "google-imagen"
    assert outcomes(response)[:3] == [("recraft-ai", "bad_output")] * 3
    assert stored_keys(s3_client, project) == [response.json()["s3_key"]]


def test_svg_is_refused_and_never_stored(api, project, vendors, settings, s3_client):
    vendors.script("recraft", *[Reply(body=vendor_payloads.recraft_success(SVG))] * 3)
    svg_answer = vendor_payloads.gemini_success(SVG, mime_type="image/svg+xml")
    vendors.script("gemini", *[Reply(body=svg_answer)] * 3)

    response = post(api, project)

    assert response.status_code == 502
    assert (
        outcomes(response)
        == [("recraft-ai", "bad_output")] * 3 + [("google-imagen", "bad_output")] * 3
    )
    assert GeneratedImage.objects.get(pk=response.json()["id"]).status == "failed"
    assert stored_keys(s3_client, project) == []


def test_circuit_breaker_skips_a_failing_vendor_then_tries_it_again(
    api, project, vendors, settings
):
    settings.IMAGEGEN_BREAKER_THRESHOLD = 2
    settings.IMAGEGEN_BREAKER_COOLDOWN = 0.5
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    vendors.script("recraft", Reply(status=503, body=b"down"), Reply(status=503, body=b"down"))

    failing = [post(api, project).json()["model"] for _ in range(2)]
    skipped = post(api, project)
    time.sleep(0.5)
    trial = post(api, project)

    assert failing == ["google-imagen", "google-imagen"]
    assert outcomes(skipped)[0] == ("recraft-ai", "circuit_open")
    assert trial.json()["model"] == "recraft-ai"
    assert vendors.calls("recraft") == 3
    assert CircuitBreaker("recraft-ai").state() == "closed"


def test_safety_block_falls_back_once(api, project, vendors):
    vendors.script("gemini", Reply(body=vendor_payloads.gemini_prompt_blocked("SAFETY")))

    response = post(api, project, model="google-imagen")

    assert response.status_code == 201
    assert response.json()["model"] == "recraft-ai"
    assert "google-imagen blocked: SAFETY" in response.json()["message"]
    assert (vendors.calls("gemini"), vendors.calls("recraft")) == (1, 1)


def test_safety_block_without_fallback_is_a_422_with_the_reason(
    api, project, vendors, settings, s3_client
):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    vendors.script(
        "gemini",
        Reply(
            body=vendor_payloads.gemini_finished_without_image(
                "IMAGE_PROHIBITED_CONTENT", "The image was refused."
            )
        ),
    )

    response = post(api, project, model="google-imagen")

    assert response.status_code == 422
    assert response.json()["success"] is False
    assert "blocked" in response.json()["message"]
    assert "IMAGE_PROHIBITED_CONTENT: The image was refused." in response.json()["message"]
    assert (vendors.calls("gemini"), vendors.calls("recraft")) == (1, 0)
    assert stored_keys(s3_client, project) == []


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(api, project, vendors):
    # Another host name for the same server: requests would resend x-goog-api-key there.
    elsewhere = vendors.gemini_url.replace("127.0.0.1", "localhost")
    vendors.script(
        "gemini",
        Reply(
            status=307,
            headers={"Location": f"{elsewhere}/models/gemini-2.5-flash-image:generateContent"},
        ),
    )

    response = post(api, project, model="google-imagen")

    assert response.status_code == 201
    assert response.json()["model"] == "recraft-ai"
    assert (vendors.calls("gemini"), vendors.calls("recraft")) == (1, 1)
    redirected = attempts_of(response)[0]
    assert (redirected.outcome, redirected.http_status) == ("credentials", 307)
    assert "redirect, which is not followed" in redirected.detail
