"""Read side of image generation: per-route statistics over a period, and a batch's items."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from imagegen.models import GeneratedImage, GenerationAttempt, ImageBatch

PERCENTILES = (50, 95, 99)
ALL_ROUTES = "all"


@dataclass(frozen=True)
class RouteStats:
    """One route's figures: finished images by outcome, provider calls, their cost and latency."""

    route: str
    images_succeeded: int
    images_failed: int
    calls: int
    calls_succeeded: int
    cost_usd: Decimal
    latency_ms: dict[int, int]  # percentile -> milliseconds (nearest rank); empty with no calls

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished images, or None when none finished."""
        finished = self.images_succeeded + self.images_failed
        return self.images_succeeded / finished if finished else None


def latency_percentiles(calls: QuerySet[GenerationAttempt], count: int) -> dict[int, int]:
    """Nearest-rank percentiles of `latency_ms`, computed in the database (one row each)."""
    ordered = calls.order_by("latency_ms").values_list("latency_ms", flat=True)
    return {
        percentile: ordered[max(math.ceil(percentile / 100 * count) - 1, 0)]
        for percentile in PERCENTILES
        if count
    }


def route_stats(*, since: datetime) -> list[RouteStats]:
    """Per route, then `all`: the images that finished since `since` and the calls made since.

    Calls skipped by an open circuit were never made: they count nowhere. Cost is what the calls
    cost, failed ones included (vendors bill some of them).
    """
    calls = GenerationAttempt.objects.filter(created_at__gte=since).exclude(
        outcome=GenerationAttempt.Outcome.CIRCUIT_OPEN
    )
    finished = GeneratedImage.objects.filter(
        finished_at__gte=since,
        status__in=(GeneratedImage.Status.SUCCEEDED, GeneratedImage.Status.FAILED),
    )
    routes = set(calls.order_by().values_list("provider", flat=True).distinct())
    routes |= set(finished.order_by().values_list("model", flat=True).distinct())
    stats = [
        _stats(route, calls.filter(provider=route), finished.filter(model=route))
        for route in sorted(routes)
    ]
    if len(stats) > 1:
        stats.append(_stats(ALL_ROUTES, calls, finished))
    return stats


def _stats(
    route: str, calls: QuerySet[GenerationAttempt], finished: QuerySet[GeneratedImage]
) -> RouteStats:
    call_totals = calls.aggregate(
        count=Count("id"),
        succeeded=Count("id", filter=Q(outcome=GenerationAttempt.Outcome.SUCCEEDED)),
        cost=Sum("cost_usd"),
    )
    image_totals = finished.aggregate(
        succeeded=Count("id", filter=Q(status=GeneratedImage.Status.SUCCEEDED)),
        failed=Count("id", filter=Q(status=GeneratedImage.Status.FAILED)),
    )
    return RouteStats(
        route=route or "(none)",
        images_succeeded=image_totals["succeeded"],
        images_failed=image_totals["failed"],
        calls=call_totals["count"],
        calls_succeeded=call_totals["succeeded"],
        cost_usd=call_totals["cost"] or Decimal(0),
        latency_ms=latency_percentiles(calls, call_totals["count"]),
    )


def batch_images(*, batch: ImageBatch) -> QuerySet[GeneratedImage]:
    """A batch's items, in the order they were submitted."""
    return GeneratedImage.objects.filter(memberships__batch=batch).order_by("memberships__position")
