"""Shared fixtures: users and JWT clients, S3 on a loopback moto server, faked vendor HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import uuid as uuid_lib
from collections.abc import Iterator

import boto3
import pytest
import responses
from django.conf import settings as django_settings
from django.core.cache import cache
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from config.cache import CacheOutage
from imagegen.breaker import CircuitBreaker
from imagegen.testing import vendor_payloads, vendor_rules
from imagegen.testing.fake_vendors import FakeVendorServer
from projects.tests.factories import ProjectFactory

S3_BUCKET = "imagegen-test"
S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}


# ---------------------------------------------------------------------------------------------
# Storage: a real S3 protocol endpoint on loopback (moto server mode) and the file system.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=S3_BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _s3_storages(endpoint: str) -> dict:
    return {
        **django_settings.STORAGES,
        "default": {
            "BACKEND": "config.storages.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": True,
                **S3_CREDENTIALS,
            },
        },
    }


@pytest.fixture(autouse=True)
def s3_storage(settings, moto_endpoint: str) -> str:
    """Every test stores on S3 (moto) unless it asks for `file_storage`."""
    settings.STORAGES = _s3_storages(moto_endpoint)
    return moto_endpoint


@pytest.fixture
def file_storage(settings, tmp_path) -> str:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"allow_overwrite": True, "location": str(tmp_path)},
        },
    }
    return str(tmp_path)


@pytest.fixture(params=["s3", "filesystem"])
def any_storage(request, settings, moto_endpoint: str, tmp_path) -> str:
    """Runs a test on both storage backends."""
    if request.param == "filesystem":
        request.getfixturevalue("file_storage")
    return request.param


def python_process(script: str, **environment: str) -> subprocess.Popen:
    """Our interpreter running `script` in the repo, with `environment` on top of this
    process's, its stdin and stdout pipes of text."""
    return subprocess.Popen(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", script],
        env={**os.environ, **environment},
        cwd=django_settings.BASE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def settings_in_new_process(expression: str, **environment: str) -> str:
    """What `expression` prints in a new interpreter whose settings read `environment` (on top of
    this process's): how a setting is read from the environment at start-up."""
    script = f"from django.conf import settings; print({expression})"
    result = subprocess.run(  # noqa: S603  (our own interpreter and settings)
        [sys.executable, "-c", script],
        env={**os.environ, **environment},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()[-1]


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Circuit breakers and throttles live in the cache; each test starts closed and unthrottled,
    # with the cache believed up.
    CacheOutage.clear()
    CircuitBreaker.forget_unrecorded_successes()
    cache.clear()


# ---------------------------------------------------------------------------------------------
# People and clients.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user)


@pytest.fixture
def other_project(other_user):
    return ProjectFactory(owner=other_user)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# ---------------------------------------------------------------------------------------------
# Vendors faked at the HTTP layer with `responses`, in PROVIDERS.md's exact shapes.
# ---------------------------------------------------------------------------------------------
class Vendors:
    """Queue vendor answers: `vendors.recraft(200, body)`; unqueued calls fail the test."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.recraft_url = f"{django_settings.RECRAFT_TEST_URL}/images/generations"
        self.gemini_url = (
            f"{django_settings.GEMINI_TEST_URL}/models/gemini-2.5-flash-image:generateContent"
        )

    def recraft(self, status: int = 200, body=None, **kwargs) -> None:
        self._add(
            self.recraft_url,
            status,
            vendor_payloads.recraft_success() if body is None else body,
            **kwargs,
        )

    def gemini(self, status: int = 200, body=None, **kwargs) -> None:
        self._add(
            self.gemini_url,
            status,
            vendor_payloads.gemini_success() if body is None else body,
            **kwargs,
        )

    def _add(self, url: str, status: int, body, **kwargs) -> None:
        if isinstance(body, dict):
            self.mock.add(responses.POST, url, status=status, json=body, **kwargs)
        elif isinstance(body, Exception):
            self.mock.add(responses.POST, url, body=body)
        else:
            self.mock.add(responses.POST, url, status=status, body=body, **kwargs)

    def calls(self, vendor: str) -> int:
        url = self.recraft_url if vendor == "recraft" else self.gemini_url
        return sum(1 for call in self.mock.calls if call.request.url == url)

    def refused_requests(self) -> list[str]:
        """The calls made that the real vendor would have refused (vendor_rules), described."""
        refused = []
        for call in self.mock.calls:
            url = urllib.parse.urlsplit(call.request.url)
            vendor = "recraft" if url.path.endswith("/images/generations") else "gemini"
            model = url.path.rpartition("/models/")[2].partition(":")[0]
            try:
                payload = json.loads(call.request.body or b"{}")
            except ValueError:
                payload = None
            answer = vendor_rules.refusal(
                vendor, model=model, headers=call.request.headers, payload=payload, query=url.query
            )
            if answer is not None:
                refused.append(f"{call.request.url} -> {answer[0]} {answer[1]!r}")
        return refused


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    """Every call the code under test makes must be one the real vendor takes (PROVIDERS.md):
    the answers queued here are only worth testing against for such requests."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = Vendors(mock)
        yield fake
        assert not fake.refused_requests(), "\n".join(fake.refused_requests())


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """Records the pipeline's backoff waits instead of waiting."""
    waits: list[float] = []
    monkeypatch.setattr("imagegen.services.sleep", waits.append)
    return waits


def new_uuid() -> str:
    return f"segment-{uuid_lib.uuid4().hex[:12]}"


@pytest.fixture
def fake_vendor_server(settings) -> Iterator[FakeVendorServer]:
    """Both vendors faked on a loopback HTTP server, with the providers pointed at it."""
    with FakeVendorServer(image_size=(640, 360)) as server:
        urls = {"recraft-ai": server.recraft_url, "google-imagen": server.gemini_url}
        settings.IMAGEGEN_PROVIDERS = {
            name: {**entry, "OPTIONS": {**entry["OPTIONS"], "base_url": urls[name]}}
            for name, entry in settings.IMAGEGEN_PROVIDERS.items()
        }
        yield server
