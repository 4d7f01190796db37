"""Benchmark 4: a page of `GET /image-gen` on a 10,000-image project against one raw SQL query.

Both run in this process, interleaved, on the same PostgreSQL database and connection settings:
the API through Django's WSGI handler (middleware, JWT, filters, cursor pagination, the records'
shape with presigned S3 URLs, JSON; the garbage collector set up as gunicorn.conf.py sets up a
worker), and the same page (same columns, filter, order and limit) fetched with one raw SQL query
and encoded as JSON. Also prints the queries per request (first and a deep page) and the plan of
the page query. Target: API / raw <= 3 at p50.
"""

from __future__ import annotations

import argparse
import json
import time
from urllib.parse import urlsplit

from _harness import Harness, percentile, verdict

TARGET = 3.0
IMAGES = 10_000
NOISE_IMAGES = 10_000  # other projects' images in the same table
PAGE = 100
DEEP_PAGES = 40

RAW_PAGE = """
SELECT id, visual_prompt, art_style, uuid, status, s3_key, model, message, image_size_bytes,
       project_id, user_id, created_at, updated_at, provider_model, width, height, aspect_ratio,
       cost_usd, routing_category, routing_confidence, routing_signals, router_version, batch_id
FROM imagegen_generatedimage
WHERE user_id = %s AND project_id = %s
ORDER BY created_at DESC, id DESC
LIMIT %s
"""


def fill(project, count: int) -> None:
    """`count` succeeded images in `project`, created over the past 30 days."""
    from django.db import connection

    from imagegen.models import GeneratedImage

    rows = [
        GeneratedImage(
            project=project,
            user=project.owner,
            uuid=f"segment-{index:05d}",
            visual_prompt=f"Scene {index}: a sleek water bottle on a wooden desk",
            art_style="modern minimalist photography",
            aspect_ratio="16:9",
            status=GeneratedImage.Status.SUCCEEDED,
            model="recraft-ai",
            provider_model="recraftv4_1",
            message="Image generated successfully",
            s3_key=f"images/{project.id}/segment-{index:05d}.jpg",
            image_size_bytes=245760,
            width=1344,
            height=768,
            cost_usd="0.035",
            routing_category="realistic",
            routing_confidence=0.9,
            routing_signals=["photography"],
            router_version="bench",
        )
        for index in range(count)
    ]
    GeneratedImage.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE imagegen_generatedimage SET created_at = now() - random() * interval '30 days'"
            " WHERE project_id = %s",
            [project.id],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured calls per side")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()

    with Harness() as harness:
        harness.database()
        harness.s3()
        harness.env["DJANGO_ALLOWED_HOSTS"] = "testserver"
        harness.django()

        from django.core.handlers.wsgi import WSGIHandler
        from django.db import connection
        from django.test import RequestFactory
        from django.test.utils import CaptureQueriesContext

        user, project, token = harness.owner("lists")
        fill(project, IMAGES)
        for index in range(NOISE_IMAGES // 1000):
            _, other_project, _ = harness.owner(f"neighbour-{index}")
            fill(other_project, 1000)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE imagegen_generatedimage")

        handler = WSGIHandler()
        factory = RequestFactory()

        def api(path: str) -> tuple[int, dict[str, str], bytes]:
            parts = urlsplit(path)
            environ = factory.get(parts.path, HTTP_AUTHORIZATION=token).environ
            environ["QUERY_STRING"] = parts.query
            answer: dict = {}

            def start_response(status: str, headers: list, exc_info: object = None) -> None:
                answer.update(status=int(status.split()[0]), headers=dict(headers))

            response = handler(environ, start_response)
            body = b"".join(response)
            response.close()
            return answer["status"], answer["headers"], body

        def raw() -> bytes:
            with connection.cursor() as cursor:
                cursor.execute(RAW_PAGE, [user.id, project.id, PAGE])
                columns = [column.name for column in cursor.description]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            return json.dumps(rows, default=str).encode()

        first_page = f"/image-gen?projectId={project.id}&limit={PAGE}"
        status, headers, body = api(first_page)
        assert status == 200, body
        assert len(json.loads(body)) == PAGE
        # Follow the Link header to a deep page: the cursor keeps it as cheap as the first.
        deep_page = first_page
        for _ in range(DEEP_PAGES):
            link = api(deep_page)[1]["Link"]
            deep_page = link.split(">")[0].lstrip("<").replace("http://testserver", "")

        api_ms: dict[str, list[float]] = {"first": [], "deep": []}
        raw_ms: list[float] = []
        for index in range(args.warmup + args.requests):
            samples = []
            for call in (lambda: api(first_page), lambda: api(deep_page), raw):
                started = time.perf_counter()
                call()
                samples.append((time.perf_counter() - started) * 1000)
            if index >= args.warmup:
                api_ms["first"].append(samples[0])
                api_ms["deep"].append(samples[1])
                raw_ms.append(samples[2])

        counts = {}
        page_sql = ""
        for name, path in (("first", first_page), ("deep", deep_page)):
            with CaptureQueriesContext(connection) as queries:
                api(path)
            counts[name] = len(queries)
            page_sql = queries.captured_queries[-1]["sql"]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {page_sql}")  # noqa: S608  (our own query)
            plan = [row[0] for row in cursor.fetchall()]

        print(
            f"GET /image-gen?projectId=...&limit={PAGE}: project of {IMAGES} images "
            f"(+{NOISE_IMAGES} in other projects), {args.requests} calls per side after "
            f"{args.warmup} warm-up, interleaved, in-process"
        )
        print(f"{'':34}{'p50 ms':>10}{'p95 ms':>10}")
        rows = {
            "raw SQL page + json.dumps": raw_ms,
            "API, first page": api_ms["first"],
            f"API, page {DEEP_PAGES + 1} (cursor)": api_ms["deep"],
        }
        for name, samples in rows.items():
            print(f"{name:34}{percentile(samples, 50):10.2f}{percentile(samples, 95):10.2f}")
        print(f"SQL queries per request: first page {counts['first']}, deep page {counts['deep']}")
        print("plan of the page query:")
        for line in plan:
            print(f"  {line}")
        uses_index = any("image_user_proj_created" in line for line in plan)
        print(f"served by the (user, project, -created_at, -id) index: {uses_index}")
        overall = uses_index and counts["first"] == counts["deep"]
        for name in ("first", "deep"):
            ratio = percentile(api_ms[name], 50) / percentile(raw_ms, 50)
            overall = overall and ratio <= TARGET
            print(
                f"ratio p50, {name} page: {ratio:.2f} (target <= {TARGET})",
                verdict(ratio <= TARGET),
            )
        print(f"RESULT lists: {verdict(overall)}")


if __name__ == "__main__":
    main()
