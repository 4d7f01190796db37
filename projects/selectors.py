"""Read side of projects: a user's projects with their image counts and total cost."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from imagegen.models import GeneratedImage
from projects.models import Project


def with_image_totals(projects: QuerySet[Project]) -> QuerySet[Project]:
    """`projects` annotated with `image_count` and `total_cost_usd` (the sum of image costs).

    Correlated subqueries, not a join: a page of projects adds up only its own projects'
    images (a join grouped every image of every project before the page was cut).
    """
    images = GeneratedImage.objects.filter(project=OuterRef("pk")).order_by().values("project")
    return projects.annotate(
        image_count=Coalesce(
            Subquery(images.annotate(count=Count("pk")).values("count")),
            0,
            output_field=IntegerField(),
        ),
        total_cost_usd=Coalesce(
            Subquery(images.annotate(cost=Sum("cost_usd")).values("cost")),
            Decimal(0),
            output_field=DecimalField(max_digits=12, decimal_places=6),
        ),
    )


def project_list(*, user) -> QuerySet[Project]:
    """The user's projects, newest first, annotated with `image_count` and `total_cost_usd`."""
    return with_image_totals(Project.objects.filter(owner=user))
