"""A vendor error that quotes the API key must not carry it into answers, records or logs."""

import json

import pytest

from imagegen.providers.google import GoogleImageProvider
from imagegen.providers.http import HttpReply
from imagegen.providers.recraft import RecraftProvider

KEY = "rk-SECRET-RECRAFT-123"


@pytest.mark.parametrize("status", [400, 401, 403, 429, 500])
@pytest.mark.parametrize(
    "make",
    [
        lambda: RecraftProvider(name="recraft-ai", api_key=KEY),
        lambda: GoogleImageProvider(name="google-imagen", api_key=KEY),
    ],
)
def test_vendor_error_quoting_the_key_is_masked(make, status):
    provider = make()
    for body in (
        json.dumps({"message": f"Incorrect API key provided: {KEY}"}).encode(),
        json.dumps(
            {"error": {"code": status, "message": f"key {KEY} refused", "status": "X"}}
        ).encode(),
        f"invalid key {KEY}".encode(),
    ):
        error = provider._error(HttpReply(status=status, headers={}, body=body))
        assert KEY not in error.message
        assert KEY not in str(error)
