"""`manage.py imagegen_stats`: per route, images, success rate, cost and call latency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from config.commands import OperatorCommand
from imagegen.management.tables import format_table
from imagegen.selectors import PERCENTILES, RouteStats, route_stats

# About 270 years: far beyond any image, well within what dates can count back from now.
MAX_DAYS = 100_000


class Command(OperatorCommand):
    help = (
        "Per route (recraft-ai, google-imagen, ...) over the last --days days: images that "
        "finished (succeeded, failed), their success rate, the provider calls made (retries and "
        "fallbacks included; calls skipped by an open circuit excluded), what those calls cost in "
        "USD, and call latency percentiles (p50, p95, p99, nearest rank, in milliseconds). An "
        "image counts under the route that produced or last tried it; `all` sums the routes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=7, help="The period, ending now, in days (default 7)."
        )

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(
                f"--days must be a whole number of days from 1 to {MAX_DAYS}, not {days}."
            )
        since = timezone.now() - timedelta(days=days)
        self.stdout.write(
            f"Image generation in the last {days} day(s), since {since:%Y-%m-%d %H:%M} UTC"
        )
        stats = route_stats(since=since)
        if not stats:
            self.stdout.write("No image finished and no provider was called in this period.")
            return
        table = [
            (
                "route",
                "images",
                "succeeded",
                "failed",
                "success",
                "calls",
                "cost USD",
                *(f"p{percentile} ms" for percentile in PERCENTILES),
            ),
            *(row(route) for route in stats),
        ]
        for line in format_table(table, right_aligned=range(1, len(table[0]))):
            self.stdout.write(line)


def row(stats: RouteStats) -> tuple[str, ...]:
    rate = stats.success_rate
    return (
        stats.route,
        str(stats.images_succeeded + stats.images_failed),
        str(stats.images_succeeded),
        str(stats.images_failed),
        "-" if rate is None else f"{rate:.1%}",
        str(stats.calls),
        f"{stats.cost_usd:.4f}",
        *(str(stats.latency_ms.get(percentile, "-")) for percentile in PERCENTILES),
    )
