"""A loopback HTTP server speaking Recraft's and Gemini's wire formats, with scriptable faults.

Used by the end-to-end tests (in-process) and the benchmarks (`python -m
imagegen.testing.fake_vendors --port 9100 --latency 2`). Recraft lives under `/recraft/v1`,
Gemini under `/gemini/v1beta`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imagegen.testing import vendor_payloads, vendor_rules

_GEMINI_PATH = re.compile(r"^/gemini/v1beta/models/(?P<model>[^/:]+):generateContent$")
_RECRAFT_PATH = "/recraft/v1/images/generations"


@dataclass
class Reply:
    """One scripted answer. `delay` waits before the headers; `trickle` sends the body a byte
    every `trickle` seconds, `trickle_headers` does the same with the status line and headers."""

    status: int = 200
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0
    trickle_headers: float = 0.0
    drop: bool = False  # close the connection without answering


class FakeVendorServer:
    """`with FakeVendorServer() as vendors:`, then script faults with `vendors.script(...)`."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        image_size: tuple[int, int] = (64, 36),
        content: vendor_payloads.Content = "flat",
        port: int = 0,
    ) -> None:
        self.latency = latency
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self._arrivals: list[tuple[str, float]] = []
        self._image_size, self._content = image_size, content
        self._recraft_image = vendor_payloads.image_bytes("WEBP", image_size, content=content)
        self._gemini_image = vendor_payloads.image_bytes("PNG", image_size, content=content)
        self._success_bodies: dict[tuple[str, str], bytes] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def recraft_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/recraft/v1"

    @property
    def gemini_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gemini/v1beta"

    def start(self) -> FakeVendorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------
    def script(self, vendor: str, *replies: Reply) -> None:
        """Queue answers for `recraft` or `gemini`; once used up, every call succeeds."""
        with self._lock:
            self._scripts[vendor].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self._arrivals.clear()

    def calls(self, vendor: str) -> int:
        with self._lock:
            return sum(1 for name, _, _ in self.requests if name == vendor)

    def arrivals(self, vendor: str) -> list[float]:
        """When each call to `vendor` arrived (`time.monotonic()`), oldest first."""
        with self._lock:
            return [moment for name, moment in self._arrivals if name == vendor]

    def _next_reply(self, vendor: str, model: str, payload: dict[str, Any]) -> Reply:
        with self._lock:
            if self._scripts[vendor]:
                return self._scripts[vendor].popleft()
        if vendor == "recraft" and payload.get("response_format", "url") == "url":
            # Recraft's default: a signed link to fetch, never the bytes.
            link = {"image_id": "rc-img-1", "url": "https://img.recraft.ai/fake/rc-img-1.webp"}
            return Reply(body={"created": 1764000000, "credits": 35, "data": [link]})
        return Reply(
            body=self._success_body(vendor, model),
            headers={"Content-Type": "application/json"},
            delay=self.latency,
        )

    def _success_body(self, vendor: str, model: str) -> bytes:
        """The answer with the image, encoded once per vendor and model: a real vendor's base64
        and JSON encoding does not run on the machine under test (a photo-like 1024x1024 PNG
        is a 2.4 MB body). Gemini's 3.x models answer JPEG, 2.5 flash PNG."""
        body = self._success_bodies.get((vendor, model))
        if body is None:
            if vendor == "recraft":
                payload = vendor_payloads.recraft_success(self._recraft_image)
            else:
                mime_type = vendor_rules.gemini_mime_type(model)
                image = (
                    self._gemini_image
                    if mime_type == "image/png"
                    else vendor_payloads.image_bytes(
                        "JPEG", self._image_size, content=self._content
                    )
                )
                payload = vendor_payloads.gemini_success(image, mime_type=mime_type, model=model)
            body = self._success_bodies.setdefault((vendor, model), json.dumps(payload).encode())
        return body

    # -- HTTP ------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK (40 ms on Linux), a stall no real vendor adds.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep test and benchmark output clean

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = None
                path, _, query = self.path.partition("?")
                if path == _RECRAFT_PATH:
                    model = payload.get("model", "") if isinstance(payload, dict) else ""
                    vendor, model = "recraft", str(model)
                elif match := _GEMINI_PATH.match(path):
                    vendor, model = "gemini", match.group("model")
                else:
                    self._send(Reply(status=404, body=b"404 page not found"))
                    return
                with server._lock:
                    server.requests.append((vendor, payload, dict(self.headers)))
                    server._arrivals.append((vendor, time.monotonic()))
                refused = vendor_rules.refusal(
                    vendor, model=model, headers=dict(self.headers), payload=payload, query=query
                )
                if refused is not None:
                    self._send(Reply(status=refused[0], body=refused[1]))
                    return
                self._send(server._next_reply(vendor, model, payload))

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if isinstance(reply.body, dict):
                    body, content_type = json.dumps(reply.body).encode(), "application/json"
                else:
                    body, content_type = reply.body or b"", "text/plain"
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                try:
                    if reply.trickle_headers:
                        self._headers_buffer.append(b"\r\n")
                        head, self._headers_buffer = b"".join(self._headers_buffer), []
                        self._write(head, reply.trickle_headers)
                    else:
                        self.end_headers()
                    self._write(body, reply.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _write(self, data: bytes, trickle: float) -> None:
                if not trickle:
                    self.wfile.write(data)
                    return
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()
                    time.sleep(trickle)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--size", default="1024x1024", help="image size, WxH")
    parser.add_argument(
        "--content",
        choices=vendor_payloads.CONTENTS,
        default="flat",
        help="what the images show (see vendor_payloads.image_bytes)",
    )
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    server = FakeVendorServer(
        latency=args.latency, image_size=(width, height), content=args.content, port=args.port
    )
    print(f"fake vendors on {server.recraft_url} and {server.gemini_url}", flush=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
