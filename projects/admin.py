"""Staff pages for projects: owner, image count, total cost, and the newest images inline."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from rest_framework import serializers

from config.admin import GuardedChangeListMixin, NewestInline, RelatedOnlyFilter
from imagegen.admin import prompt_excerpt, route, style_excerpt, success, thumbnail
from imagegen.models import GeneratedImage
from projects import selectors, services
from projects.models import Project
from projects.serializers import ProjectSerializer


class ImageInline(NewestInline):
    """The project's newest images, read-only; each links to its own page (edit, regenerate)."""

    model = GeneratedImage
    verbose_name_plural = f"images (the {NewestInline.max_shown} newest)"
    fields = (
        thumbnail,
        "uuid",
        prompt_excerpt,
        style_excerpt,
        route,
        success,
        "status",
        "image_size_bytes",
        "cost_usd",
        "created_at",
    )
    readonly_fields = fields


class ProjectForm(forms.ModelForm):
    """The name, validated exactly as the API validates it (no control characters)."""

    class Meta:
        model = Project
        fields = ("name", "owner")

    def clean_name(self) -> str:
        try:
            return ProjectSerializer().fields["name"].run_validation(self.cleaned_data["name"])
        except serializers.ValidationError as exc:
            raise forms.ValidationError(exc.detail) from exc


@admin.register(Project)
class ProjectAdmin(GuardedChangeListMixin, admin.ModelAdmin):
    form = ProjectForm
    list_display = ("name", "id", "owner", "image_count", "total_cost", "created_at")
    list_select_related = ("owner",)
    list_filter = (("owner", RelatedOnlyFilter), "created_at")
    search_fields = ("name", "id", "owner__username")
    date_hierarchy = "created_at"
    fields = ("name", "owner", "id", "image_count", "total_cost", "images_link", "created_at")
    readonly_fields = ("id", "image_count", "total_cost", "images_link", "created_at")
    raw_id_fields = ("owner",)
    inlines = (ImageInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return selectors.with_image_totals(super().get_queryset(request))

    def get_fields(self, request: HttpRequest, obj: Project | None = None) -> tuple:
        return self.fields if obj else ("name", "owner")

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> tuple:
        # The owner is chosen once, when staff create a project; images belong to that user.
        return (*self.readonly_fields, "owner") if obj else self.readonly_fields

    @admin.display(description="images", ordering="image_count")
    def image_count(self, project: Project) -> int:
        return getattr(project, "image_count", 0)

    @admin.display(description="total cost (USD)", ordering="total_cost_usd")
    def total_cost(self, project: Project) -> Decimal:
        return getattr(project, "total_cost_usd", Decimal(0))

    @admin.display(description="in the image list")
    def images_link(self, project: Project) -> str:
        url = reverse("admin:imagegen_generatedimage_changelist")
        query = urlencode({"project__id__exact": project.pk})
        return format_html('<a href="{}?{}">Filter, search and export these images</a>', url, query)

    def delete_model(self, request: HttpRequest, obj: Project) -> None:
        services.project_delete(project=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            services.project_delete(project=project)
