"""Query filters of `GET /image-gen`: `id` and `projectId` (the seed's names)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.http import Http404

from imagegen.models import GeneratedImage
from projects.models import Project


class ImageFilter(django_filters.FilterSet):
    """Both filters answer 404 for an image or project the caller does not own (or that does not
    exist), like every other access to it: the two cases cannot be told apart."""

    id = django_filters.CharFilter(method="filter_id")
    projectId = django_filters.CharFilter(method="filter_project")  # noqa: N815

    class Meta:
        model = GeneratedImage
        fields = ("id", "projectId")

    def filter_id(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # `queryset` holds only the caller's images.
        matching = queryset.filter(pk=value)
        if not matching.exists():
            raise Http404
        return matching

    def filter_project(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if not Project.objects.filter(pk=value, owner=self.request.user).exists():
            raise Http404
        return queryset.filter(project_id=value)
