"""Benchmark 1: what `POST /image-gen` adds to the bare pipeline, with a zero-latency vendor.

Both sides run in one run, interleaved: the bare pipeline in this process (the provider's call
to the fake vendor, decode, JPEG encode, the storage put to moto) and the API over HTTP against
gunicorn with the repo's gunicorn.conf.py (JWT, validation, routing, the claim, the same
pipeline, the records and the answer). Target: API / bare <= 1.25 at p50 and p95.

A third side, interleaved with the other two, measures the floor: the same POST for a project
that does not exist, answered 404 after the HTTP round trip, the token check, validation and one
database lookup. Every generation pays at least that before any of its own work.
"""

from __future__ import annotations

import argparse
import time

import requests
from _harness import Harness, image_arguments, percentile, verdict

TARGET = 1.25
PROMPT = {"visual_prompt": "A sleek water bottle on a wooden desk", "art_style": "photography"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=150, help="measured calls per side")
    parser.add_argument("--warmup", type=int, default=15)
    image_arguments(parser)
    args = parser.parse_args()

    with Harness() as harness:
        harness.database()
        harness.s3()
        harness.vendors(latency=0, size=args.size, content=args.content)
        url, server = harness.gunicorn()
        harness.django()

        from django.conf import settings
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        from imagegen import imaging
        from imagegen.providers.base import GenerationRequest
        from imagegen.providers.registry import get_providers

        _, project, token = harness.owner("overhead")
        provider = get_providers()["recraft-ai"]
        request = GenerationRequest(
            prompt=f"{PROMPT['visual_prompt']}. Art style: {PROMPT['art_style']}",
            aspect_ratio="16:9",
            category="realistic",
        )
        session = requests.Session()
        session.headers["Authorization"] = token

        def bare(index: int) -> None:
            result = provider.generate(request, timeout=settings.IMAGEGEN_PROVIDER_TIMEOUT)
            jpeg = imaging.to_jpeg(
                result.image_bytes,
                max_bytes=settings.IMAGEGEN_MAX_IMAGE_BYTES,
                quality=settings.IMAGEGEN_JPEG_QUALITY,
            )
            default_storage.save(f"images/bare/{index}.jpg", ContentFile(jpeg.data))

        def api(index: int) -> None:
            body = {**PROMPT, "uuid": f"segment-{index:05d}", "projectId": project.id}
            response = session.post(f"{url}/image-gen", json=body, timeout=30)
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /image-gen answered {response.status_code}: {response.text}"
                )

        def floor(index: int) -> None:
            body = {**PROMPT, "uuid": f"segment-{index:05d}", "projectId": "nosuchproject"}
            response = session.post(f"{url}/image-gen", json=body, timeout=30)
            if response.status_code != 404:
                raise RuntimeError(f"the floor request answered {response.status_code}")

        bare_ms: list[float] = []
        api_ms: list[float] = []
        floor_ms: list[float] = []
        for index in range(args.warmup + args.requests):
            for side, samples in ((bare, bare_ms), (api, api_ms), (floor, floor_ms)):
                started = time.perf_counter()
                side(index)
                if index >= args.warmup:
                    samples.append((time.perf_counter() - started) * 1000)

        print(
            f"POST /image-gen overhead: {args.requests} calls per side after {args.warmup} "
            f"warm-up, interleaved, zero-latency fake vendor, {args.size} {args.content} images, "
            "S3 on moto"
        )
        print(f"{'':24}{'p50 ms':>10}{'p95 ms':>10}")
        rows = {
            "bare pipeline": bare_ms,
            "POST /image-gen": api_ms,
            "floor (404 POST)": floor_ms,
        }
        for name, samples in rows.items():
            print(f"{name:24}{percentile(samples, 50):10.2f}{percentile(samples, 95):10.2f}")
        ratios = {pct: percentile(api_ms, pct) / percentile(bare_ms, pct) for pct in (50, 95)}
        for pct, ratio in ratios.items():
            print(f"ratio p{pct}: {ratio:.2f} (target <= {TARGET})  {verdict(ratio <= TARGET)}")
        fixed = percentile(floor_ms, 50) / percentile(bare_ms, 50)
        print(
            f"floor: any authenticated POST costs {fixed:.0%} of the bare pipeline at p50; "
            f"the target leaves {TARGET - 1:.0%} for all of the API's work"
        )
        overall = all(ratio <= TARGET for ratio in ratios.values())
        print(f"RESULT overhead: {verdict(overall)}")


if __name__ == "__main__":
    main()
