"""Benchmark 2: 64 simultaneous `POST /image-gen` with a 2 s vendor, against gunicorn.

gunicorn runs with the repo's gunicorn.conf.py (gthread workers, one per core, many threads);
the fake vendors answer after 2 s; images go to S3 on moto. The server is warmed first (16
requests), as a running one is. Then 64 requests (4 users x 16, under the per-user in-flight
cap) are written at once on 64 open connections by a lean client (prepared bytes, one thread,
so the client's own CPU does not stagger them). Prints the wall time until the last answer, the
server's peak RSS (psutil over the gunicorn process tree), its CPU time, the peak PostgreSQL
connections and where the machine's CPU went (server, moto, fake vendors, PostgreSQL, client).
Target: all 64 generated within 2.5 s.

Also measured in the same run: the conversion floor. Every answer must be decoded and encoded
as JPEG after the vendor's 2 s, so no server finishes before 2 s + (the conversions' CPU time /
cores), even if converting were the only work on the machine. The S3 endpoint's CPU for the puts
(moto's share of the ledger) also falls after the answers and is added to that floor.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import time
from urllib.parse import urlsplit

from _harness import CpuLedger, Harness, TreeSampler, image_arguments, median, percentile, verdict

TARGET_SECONDS = 2.5
USERS = 4
WARMUP = 16
LATENCY = 2.0
PROMPTS = (
    {"visual_prompt": "A sleek water bottle on a wooden desk", "art_style": "photography"},
    {"visual_prompt": "A fox in a snowy forest", "art_style": "watercolor painting"},
)


def request_bytes(host: str, token: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /image-gen HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def fire(address: tuple[str, int], requests: list[bytes]) -> tuple[float, list[tuple[int, float]]]:
    """Open a connection per request, then write them all at once; return when each answered
    (seconds after the first write) with its status."""
    selector = selectors.DefaultSelector()
    connections = [socket.create_connection(address) for _ in requests]
    buffers = {connection: b"" for connection in connections}
    answers: dict[socket.socket, tuple[int, float]] = {}
    released = time.perf_counter()
    for connection, data in zip(connections, requests, strict=True):
        connection.sendall(data)
        selector.register(connection, selectors.EVENT_READ)
    while len(answers) < len(connections):
        for key, _ in selector.select(timeout=30):
            connection = key.fileobj
            buffers[connection] += connection.recv(65536)
            head, _, body = buffers[connection].partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                status = int(head.split(b" ")[1])
                answers[connection] = (status, time.perf_counter() - released)
                selector.unregister(connection)
    for connection in connections:
        connection.close()
    return released, [answers[connection] for connection in connections]


def conversion_seconds(size: str, content: str, count: int) -> float:
    """CPU seconds to convert `count` answers of the fake vendors (half Recraft WebP, half
    Gemini PNG, as the burst's prompts alternate) with the server's own `imaging.to_jpeg`."""
    from django.conf import settings

    from imagegen import imaging
    from imagegen.testing import vendor_payloads

    width, height = (int(side) for side in size.split("x"))
    seconds = []
    for fmt in ("WEBP", "PNG"):
        data = vendor_payloads.image_bytes(fmt, (width, height), content=content)
        samples = []
        for _ in range(12):
            started = time.process_time()
            imaging.to_jpeg(
                data,
                max_bytes=settings.IMAGEGEN_MAX_IMAGE_BYTES,
                quality=settings.IMAGEGEN_JPEG_QUALITY,
            )
            samples.append(time.process_time() - started)
        seconds.append(median(samples))
    return sum(seconds) / 2 * count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    image_arguments(parser)
    args = parser.parse_args()

    with Harness() as harness:
        harness.database()
        harness.s3()
        harness.vendors(latency=LATENCY, size=args.size, content=args.content)
        url, server = harness.gunicorn()
        harness.django()
        owners = [harness.owner(f"burst-{index}") for index in range(USERS)]
        address = urlsplit(url)
        host = address.netloc

        def prepared(first: int, count: int) -> list[bytes]:
            requests = []
            for index in range(first, first + count):
                _, project, token = owners[index % USERS]
                body = {
                    **PROMPTS[index % 2],
                    "uuid": f"segment-{index:04d}",
                    "projectId": project.id,
                }
                requests.append(request_bytes(host, token, body))
            return requests

        # A running server has served requests before: its workers have loaded their code and
        # opened their first storage, vendor and database connections. 16 at once reach both.
        _, warmed = fire((address.hostname, address.port), prepared(1000, WARMUP))
        assert {status for status, _ in warmed} == {201}, warmed

        burst = prepared(0, args.requests)
        with TreeSampler(server.pid) as sampler, CpuLedger(harness) as ledger:
            cpu_before = sampler.cpu_seconds()
            _, answers = fire((address.hostname, address.port), burst)
            cpu = sampler.cpu_seconds() - cpu_before
        conversion = conversion_seconds(args.size, args.content, args.requests)
        statuses = [status for status, _ in answers]
        latencies = [seconds for _, seconds in answers]
        wall = max(latencies)
        generated = statuses.count(201)

        print(
            f"POST /image-gen burst: {args.requests} simultaneous requests, vendor latency "
            f"{LATENCY:.0f} s, gunicorn.conf.py (gthread), S3 on moto, "
            f"{args.size} {args.content} images"
        )
        print(
            f"generated (201): {generated}/{args.requests}  other answers: "
            f"{sorted(set(statuses) - {201}) or 'none'}"
        )
        print(f"wall time until the last answer: {wall:.2f} s (target <= {TARGET_SECONDS} s)")
        print(
            f"latency p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s"
        )
        print(f"server peak RSS (gunicorn tree): {sampler.peak_rss / 2**20:.0f} MiB")
        print(f"server CPU during the burst: {cpu:.2f} s")
        print(f"peak PostgreSQL connections to the bench database: {sampler.peak_connections}")
        print(ledger.report())
        cores = os.cpu_count() or 1
        print(
            f"conversion floor: {args.requests} conversions take {conversion:.2f} s of CPU here, "
            f"so no server answers all before {LATENCY + conversion / cores:.2f} s on {cores} cores"
        )
        # Everything moto did during the burst was storing the 64 answers, after the vendor's 2 s.
        storage = ledger.seconds["moto"]
        print(
            f"with the S3 endpoint's CPU for the {args.requests} puts ({storage:.2f} s, also after "
            f"the answers): no server answers all before "
            f"{LATENCY + (conversion + storage) / cores:.2f} s, whatever its own code costs"
        )
        ok = generated == args.requests and wall <= TARGET_SECONDS
        print(f"RESULT burst: {verdict(ok)}")


if __name__ == "__main__":
    main()
