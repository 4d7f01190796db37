"""HTTP for vendor clients: pooled sessions, a deadline on the whole call, a cap on the body."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from imagegen.providers.base import (
    ProviderBadOutput,
    ProviderMisconfigured,
    ProviderTimeout,
    ProviderUnavailable,
)

_CHUNK_BYTES = 256 * 1024
# Refused by requests before a byte is sent: a setting is wrong, no retry can help.
_UNSENDABLE = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)
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
        except (ValueError, RecursionError) as exc:
            # RecursionError: arrays or objects nested thousands deep.
            raise ProviderBadOutput(
                f"answer is not JSON ({len(self.body)} bytes)", http_status=self.status
            ) from exc

    def text_excerpt(self, limit: int = 300) -> str:
        """The start of the body as text, for error messages (bodies can be HTML from proxies)."""
        return self.body[:limit].decode("utf-8", "replace").strip()


class _Call:
    """One vendor call in flight. Socket timeouts bound each read, not the call: a vendor that
    trickles its headers or body a byte at a time would never trip them. At the deadline a
    watchdog shuts the call's socket down, which ends any read blocked on it."""

    def __init__(self) -> None:
        self.connection: HTTPConnection | None = None
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _TrackedConnection:
    """Tells the thread's call in flight which connection it runs on, before any byte moves."""

    def connect(self) -> None:
        _track(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _track(self)
        super().request(*args, **kwargs)


def _track(connection: Any) -> None:
    call = getattr(_local, "call", None)
    if call is not None:
        call.connection = connection


class _TrackedHTTPConnection(_TrackedConnection, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_TrackedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """A pooled adapter whose connections can be cut by the call's watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def _session() -> requests.Session:
    # One session per thread: requests sessions are not thread-safe, and pooling saves TLS setups.
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.mount("https://", _DeadlineAdapter(pool_connections=4, pool_maxsize=8))
        session.mount("http://", _DeadlineAdapter(pool_connections=4, pool_maxsize=8))
        _local.session = session
    return session


@contextlib.contextmanager
def _watchdog(timeout: float) -> Iterator[_Call]:
    call = _Call()
    timer = threading.Timer(timeout, call.expire)
    timer.daemon = True
    _local.call = call
    timer.start()
    try:
        yield call
    finally:
        timer.cancel()
        _local.call = None


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

    Compressed answers (gzip, deflate) are decoded. Raises `ProviderTimeout` past the deadline
    (including a vendor that trickles its headers or body), `ProviderUnavailable` on connection
    errors, `ProviderBadOutput` for a body over the cap.
    """
    too_late = f"answer not complete within {timeout:g} s"
    with _watchdog(timeout) as call:
        try:
            response = _session().post(
                url,
                json=payload,
                headers=headers,
                timeout=(min(connect_timeout, timeout), timeout),
                stream=True,
                # requests keeps custom headers (x-goog-api-key) across a redirect to another
                # host: a redirect is answered below, never followed.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise ProviderTimeout(f"no answer within {timeout:g} s") from exc
        except _UNSENDABLE as exc:
            # Raised before anything is sent; the exception's text may hold the key itself.
            raise ProviderMisconfigured(
                f"the request could not be sent ({type(exc).__name__}): check the provider's "
                "API key (a line break or other control character in it?) and its base URL"
            ) from exc
        except requests.RequestException as exc:
            if call.expired:
                raise ProviderTimeout(too_late) from exc
            raise ProviderUnavailable(f"connection failed: {type(exc).__name__}") from exc
        with response:
            if 300 <= response.status_code < 400:
                raise ProviderMisconfigured(
                    f"the endpoint answered HTTP {response.status_code}, a redirect, which is "
                    "not followed (the request carries the API key): set the provider's base "
                    "URL to the address it redirects to",
                    http_status=response.status_code,
                )
            body = _read_body(response, max_body_bytes=max_body_bytes, call=call, too_late=too_late)
        return HttpReply(status=response.status_code, headers=dict(response.headers), body=body)


def _read_body(
    response: requests.Response, *, max_body_bytes: int, call: _Call, too_late: str
) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise ProviderBadOutput(
            f"answer of {int(declared)} bytes exceeds the {max_body_bytes}-byte cap",
            http_status=response.status_code,
        )
    chunks: list[bytes] = []
    received = 0
    try:
        while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
            received += len(chunk)
            if received > max_body_bytes:
                raise ProviderBadOutput(
                    f"answer exceeds the {max_body_bytes}-byte cap",
                    http_status=response.status_code,
                )
            chunks.append(chunk)
    except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
        raise ProviderTimeout(too_late) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if call.expired:
            raise ProviderTimeout(too_late) from exc
        raise ProviderUnavailable(f"connection broke mid-answer: {type(exc).__name__}") from exc
    if call.expired:
        # The watchdog cut the body short where the end of the stream looked like its end.
        raise ProviderTimeout(too_late)
    return b"".join(chunks)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "NaN" and "inf" parse as floats but are no wait (and time.sleep refuses NaN).
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)
