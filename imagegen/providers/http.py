"""HTTP for vendor clients: pooled sessions, a deadline on the whole call, a cap on the body."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from imagegen.providers.base import ProviderBadOutput, ProviderTimeout, ProviderUnavailable

_CHUNK_BYTES = 256 * 1024
_local = threading.local()


@dataclass(frozen=True)
class HttpReply:
    """A complete vendor answer: status, headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; junk is a `ProviderBadOutput`."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ProviderBadOutput(
                f"answer is not JSON ({len(self.body)} bytes)", http_status=self.status
            ) from exc

    def text_excerpt(self, limit: int = 300) -> str:
        """The start of the body as text, for error messages (bodies can be HTML from proxies)."""
        return self.body[:limit].decode("utf-8", "replace").strip()


def _session() -> requests.Session:
    # One session per thread: requests sessions are not thread-safe, and pooling saves TLS setups.
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=8))
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=8))
        _local.session = session
    return session


def _set_socket_timeout(response: requests.Response, seconds: float) -> None:
    # After the headers arrive, the socket's read timeout must shrink with the deadline, or a
    # silent vendor could hold the call for a whole extra read timeout.
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def post_json(
    url: str,
    *,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    timeout: float,
    connect_timeout: float,
    max_body_bytes: int,
) -> HttpReply:
    """POST JSON and read the whole answer within `timeout` seconds, whatever the vendor does.

    Raises `ProviderTimeout` past the deadline (including a vendor that trickles bytes),
    `ProviderUnavailable` on connection errors, `ProviderBadOutput` for a body over the cap.
    """
    deadline = time.monotonic() + timeout
    try:
        response = _session().post(
            url,
            json=payload,
            headers=headers,
            timeout=(min(connect_timeout, timeout), timeout),
            stream=True,
        )
    except requests.Timeout as exc:
        raise ProviderTimeout(f"no answer within {timeout:g} s") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"connection failed: {type(exc).__name__}") from exc

    with response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise ProviderBadOutput(
                f"answer of {int(declared)} bytes exceeds the {max_body_bytes}-byte cap",
                http_status=response.status_code,
            )
        chunks: list[bytes] = []
        received = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProviderTimeout(f"answer not complete within {timeout:g} s")
                _set_socket_timeout(response, remaining)
                chunk = response.raw.read1(_CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_body_bytes:
                    raise ProviderBadOutput(
                        f"answer exceeds the {max_body_bytes}-byte cap",
                        http_status=response.status_code,
                    )
                chunks.append(chunk)
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise ProviderTimeout(f"answer not complete within {timeout:g} s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ProviderUnavailable(f"connection broke mid-answer: {type(exc).__name__}") from exc
        return HttpReply(
            status=response.status_code, headers=dict(response.headers), body=b"".join(chunks)
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)
