"""DEBUG's error page must not show the passwords in DATABASE_URL, CACHE_URL or the broker URL."""

from unittest import mock

import pytest
from django.test import Client

DATABASE_URL = "postgres://postgres:pw-SECRET-000@127.0.0.1:5432/imagegen"
REDIS_URL = "redis://:redis-SECRET-555@127.0.0.1:6379/0"


@pytest.mark.django_db
def test_debug_error_page_hides_urls_with_passwords(settings):
    settings.DEBUG = True
    settings.CACHE_URL = REDIS_URL
    settings.CELERY_BROKER_URL = REDIS_URL
    settings.CACHES = {
        **settings.CACHES,
        "other": {"BACKEND": "django.core.cache.backends.dummy.DummyCache", "LOCATION": REDIS_URL},
    }
    client = Client(raise_request_exception=False)
    # runserver (wsgiref) copies the process environment into request.META. The admin looks
    # its permission check up at each request (its views are bound when the URLs load).
    with mock.patch(
        "django.contrib.admin.sites.AdminSite.has_permission", side_effect=RuntimeError("x")
    ):
        answer = client.get("/admin/", DATABASE_URL=DATABASE_URL)
    assert answer.status_code == 500
    assert b"pw-SECRET-000" not in answer.content
    assert b"redis-SECRET-555" not in answer.content
