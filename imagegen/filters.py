"""Query filters of `GET /image-gen`: `id` and `projectId` (the seed's names)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.http import Http404

from imagegen.models import GeneratedImage
from projects.models import Project


class ImageFilter(django_filters.FilterSet):
    id = django_filters.CharFilter(field_name="id")
    projectId = django_filters.CharFilter(method="filter_project")  # noqa: N815

    class Meta:
        model = GeneratedImage
        fields = ("id", "projectId")

    def filter_project(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Filtering by a project the caller does not own is a 404, like every other access to it.
        if not Project.objects.filter(pk=value, owner=self.request.user).exists():
            raise Http404
        return queryset.filter(project_id=value)
