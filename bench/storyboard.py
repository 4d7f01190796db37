"""Benchmark 3: a 200-item storyboard through Celery (Redis broker, one threads-pool worker).

`POST /image-gen/batch` goes to gunicorn (repo's gunicorn.conf.py); one
`celery -A config worker --pool threads` (CELERY_WORKER_CONCURRENCY, IMAGEGEN_PROVIDER_CONCURRENCY
as configured) generates against the fake vendors (2 s per image), storing on S3 (moto). The
clock runs from the POST until `GET /image-gen/batch/<id>` reports every image done. Prints the
rate, the worker's peak RSS and CPU, and the peak PostgreSQL connections.
Target: >= 25 images per second end to end.
"""

from __future__ import annotations

import argparse
import time

import requests
from _harness import Harness, TreeSampler, image_arguments, verdict

TARGET_RATE = 25.0
LATENCY = 2.0
PROMPTS = (
    {"visual_prompt": "A lighthouse on a cliff at dusk, waves below", "art_style": "photography"},
    {"visual_prompt": "A fox curled up in a snowy forest", "art_style": "watercolor painting"},
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    image_arguments(parser)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    with Harness() as harness:
        harness.database()
        harness.s3()
        harness.vendors(latency=LATENCY, size=args.size, content=args.content)
        worker = harness.celery_worker()
        url, _ = harness.gunicorn()
        harness.django()
        _, project, token = harness.owner("storyboard")
        session = requests.Session()
        session.headers["Authorization"] = token
        items = [
            {**PROMPTS[index % len(PROMPTS)], "uuid": f"shot-{index:03d}"}
            for index in range(args.items)
        ]

        with TreeSampler(worker.pid) as sampler:
            cpu_before = sampler.cpu_seconds()
            started = time.perf_counter()
            accepted = session.post(
                f"{url}/image-gen/batch",
                json={"projectId": project.id, "items": items},
                timeout=60,
            )
            accepted_after = time.perf_counter() - started
            if accepted.status_code != 202:
                raise RuntimeError(f"the batch was refused: {accepted.status_code} {accepted.text}")
            batch_url = f"{url}/image-gen/batch/{accepted.json()['batchId']}"
            while True:
                progress = session.get(batch_url, timeout=30).json()
                elapsed = time.perf_counter() - started
                if progress["done"] or elapsed > args.timeout:
                    break
                time.sleep(0.1)
            cpu = sampler.cpu_seconds() - cpu_before

        counts = progress["counts"]
        rate = counts["succeeded"] / elapsed
        print(
            f"storyboard: {args.items} items, vendor latency {LATENCY:.0f} s, "
            f"{args.size} {args.content} images, "
            "one Celery worker (threads pool), Redis broker, S3 on moto"
        )
        print(f"POST /image-gen/batch answered 202 after {accepted_after:.2f} s")
        print(f"images per status: {counts}")
        print(f"all done after {elapsed:.2f} s: {rate:.1f} images/s (target >= {TARGET_RATE})")
        print(f"worker peak RSS: {sampler.peak_rss / 2**20:.0f} MiB, CPU: {cpu:.2f} s")
        print(f"peak PostgreSQL connections to the bench database: {sampler.peak_connections}")
        ok = counts["succeeded"] == args.items and rate >= TARGET_RATE
        print(f"RESULT storyboard: {verdict(ok)}")


if __name__ == "__main__":
    main()
