"""Read side of projects: a user's projects with their image counts and total cost."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from projects.models import Project


def with_image_totals(projects: QuerySet[Project]) -> QuerySet[Project]:
    """`projects` annotated with `image_count` and `total_cost_usd` (the sum of image costs)."""
    return projects.annotate(
        image_count=Count("images"),
        total_cost_usd=Coalesce(
            Sum("images__cost_usd"),
            Value(Decimal(0)),
            output_field=DecimalField(max_digits=12, decimal_places=6),
        ),
    )


def project_list(*, user) -> QuerySet[Project]:
    """The user's projects, newest first, annotated with `image_count` and `total_cost_usd`."""
    return with_image_totals(Project.objects.filter(owner=user))
