"""Query filters of `GET /image-gen`: `id` and `projectId` (the seed's names)."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import Http404

from imagegen.models import GeneratedImage
from projects.models import Project


class ImageFilterForm(forms.Form):
    """A filter is an id, taken exactly as sent, as in a body. Sent empty (`?projectId=`) it is
    refused: django-filter would drop it and answer every image, when the caller meant one
    project or image and lost its id on the way."""

    def clean(self) -> dict:
        cleaned = super().clean()
        for name in self.fields:
            value = self.data.get(name)
            if value == "":
                self.add_error(name, f"Must not be empty; leave {name} out to list all images.")
            elif value is not None and value != value.strip():
                self.add_error(name, "Must be an id exactly as given, without spaces around it.")
        return cleaned


class ImageFilter(django_filters.FilterSet):
    """Both filters answer 404 for an image or project the caller does not own (or that does not
    exist), like every other access to it: the two cases cannot be told apart."""

    id = django_filters.CharFilter(method="filter_id")
    projectId = django_filters.CharFilter(method="filter_project")  # noqa: N815

    class Meta:
        model = GeneratedImage
        fields = ("id", "projectId")
        form = ImageFilterForm

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
