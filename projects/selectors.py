"""Read side of projects: a user's project by id, their projects with image counts and cost."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from imagegen.exceptions import ProjectGone
from imagegen.models import GeneratedImage
from projects.models import Project


def owned_project(*, user, project_id: str) -> Project:
    """`user`'s project `project_id`. Raises `ProjectGone` (a 404 naming the id) for another
    user's project or none at all, alike: ids of other users' projects are not disclosed."""
    project = Project.objects.filter(pk=project_id, owner=user).first()
    if project is None:
        raise ProjectGone(project_id)
    return project


def with_image_totals(projects: QuerySet[Project]) -> QuerySet[Project]:
    """`projects` annotated with `image_count` and `total_cost_usd` (the sum of image costs),
    for one project or a list sorted by them (the admin's).

    Correlated subqueries, not a join: a page adds up only its own projects' images (a join
    grouped every image of every project before the page was cut). Each reads a project's
    images once per total; a page that needs no sorting by them takes `attach_image_totals`.
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


def attach_image_totals(projects: list[Project]) -> list[Project]:
    """Set `image_count` and `total_cost_usd` on each of `projects` (a page, already cut),
    adding up their images in one grouped query that reads each image once."""
    totals = {
        row["project_id"]: row
        for row in GeneratedImage.objects.filter(project__in=projects)
        .order_by()
        .values("project_id")
        .annotate(count=Count("pk"), cost=Sum("cost_usd"))
    }
    for project in projects:
        row = totals.get(project.pk, {"count": 0, "cost": Decimal(0)})
        project.image_count, project.total_cost_usd = row["count"], row["cost"]
    return projects


def project_list(*, user) -> QuerySet[Project]:
    """The user's projects, annotated with `image_count` and `total_cost_usd`."""
    return with_image_totals(Project.objects.filter(owner=user))
