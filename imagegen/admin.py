"""Staff pages for generated images: browse, inspect, edit the prompt, regenerate, export."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from config.admin import GuardedChangeListMixin, RelatedOnlyFilter
from config.exceptions import ServiceError
from imagegen import services
from imagegen.exceptions import StorageUnavailable
from imagegen.models import GeneratedImage, GenerationAttempt
from imagegen.serializers import ImagePatchSerializer

# The site is named for what it manages; "View site" opens the API docs (there is no other site).
admin.site.site_header = admin.site.site_title = "Image generation admin"
admin.site.index_title = "Images, projects and users"
admin.site.site_url = "/docs"

# An action on rows deleted since the list was shown (in another tab, by someone else).
SELECTION_GONE = (
    "None of the selected images exists any more (deleted meanwhile?); nothing was {done}."
)
# One admin request runs the regenerations one after another: keep it within a request's time.
MAX_REGENERATE_AT_ONCE = 10
EDITABLE_FIELDS = ("visual_prompt", "art_style")
EXPORT_COLUMNS = (
    "id",
    "project_id",
    "project",
    "owner",
    "uuid",
    "visual_prompt",
    "art_style",
    "aspect_ratio",
    "status",
    "model",
    "provider_model",
    "s3_key",
    "image_size_bytes",
    "width",
    "height",
    "cost_usd",
    "routing_category",
    "message",
    "created_at",
)
# A cell starting with one of these is a formula to a spreadsheet; prompts are user input.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def image_tag(image: GeneratedImage, *, max_width: int, max_height: int) -> str:
    """The stored image as an <img> linking to itself (a signed URL on S3), or '' when none."""
    if not image.s3_key:
        return ""
    return render_to_string(
        "admin/imagegen/image_tag.html",
        {
            "url": default_storage.url(image.s3_key),
            "alt": Truncator(image.visual_prompt).chars(80),
            "max_width": max_width,
            "max_height": max_height,
        },
    )


@admin.display(description="image")
def thumbnail(image: GeneratedImage) -> str:
    return image_tag(image, max_width=120, max_height=68)


@admin.display(description="prompt")
def prompt_excerpt(image: GeneratedImage) -> str:
    return Truncator(image.visual_prompt).chars(70)


@admin.display(description="style", ordering="art_style")
def style_excerpt(image: GeneratedImage) -> str:
    return Truncator(image.art_style).chars(40)


@admin.display(description="route", ordering="model")
def route(image: GeneratedImage) -> str:
    return image.model


@admin.display(description="success", boolean=True, ordering="status")
def success(image: GeneratedImage) -> bool:
    return image.success


class RouteListFilter(admin.AllValuesFieldListFilter):
    """The `model` column is the route that produced the image; call it that."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "route"


class GenerationAttemptInline(admin.TabularInline):
    """Every provider call made for the image: the audit trail and the bill. Read-only."""

    model = GenerationAttempt
    fields = (
        "created_at",
        "provider",
        "provider_model",
        "outcome",
        "http_status",
        "latency_ms",
        "cost_usd",
        "usage",
        "vendor_request_id",
        "detail",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GeneratedImageForm(forms.ModelForm):
    """Prompt and style, validated exactly as `PATCH /image-gen/<id>` validates them."""

    class Meta:
        model = GeneratedImage
        fields = EDITABLE_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        data = {name: cleaned[name] for name in EDITABLE_FIELDS if name in cleaned}
        serializer = ImagePatchSerializer(data=data)
        if serializer.is_valid():
            cleaned.update(serializer.validated_data)
        else:
            for field, errors in serializer.errors.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(GeneratedImage)
class GeneratedImageAdmin(GuardedChangeListMixin, admin.ModelAdmin):
    form = GeneratedImageForm
    list_display = (
        thumbnail,
        "uuid",
        prompt_excerpt,
        style_excerpt,
        route,
        "provider_model",
        success,
        "status",
        "image_size_bytes",
        "cost_usd",
        "project",
        "owner",
        "created_at",
    )
    list_display_links = ("uuid",)
    list_filter = (
        ("model", RouteListFilter),
        "status",
        ("project", RelatedOnlyFilter),
        ("user", RelatedOnlyFilter),
        "created_at",
    )
    list_select_related = ("project", "user")
    search_fields = ("visual_prompt", "art_style", "uuid")
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ("regenerate_selected", "export_as_csv")
    inlines = (GenerationAttemptInline,)
    fieldsets = (
        (None, {"fields": ("image_preview", "project", "owner", "uuid", "status", "message")}),
        ("Prompt", {"fields": EDITABLE_FIELDS}),
        (
            "Result",
            {
                "fields": (
                    "model",
                    "provider_model",
                    "requested_model",
                    "aspect_ratio",
                    "s3_key",
                    "image_size_bytes",
                    ("width", "height"),
                    "cost_usd",
                    "error_code",
                    "block_reason",
                )
            },
        ),
        (
            "Routing decision",
            {
                "fields": (
                    "routing_category",
                    "routing_confidence",
                    "signals",
                    "router_version",
                )
            },
        ),
        ("Timing", {"fields": ("created_at", "started_at", "finished_at", "updated_at", "batch")}),
    )
    readonly_fields = (
        "image_preview",
        "project",
        "owner",
        "uuid",
        "status",
        "message",
        "model",
        "provider_model",
        "requested_model",
        "aspect_ratio",
        "s3_key",
        "image_size_bytes",
        "width",
        "height",
        "cost_usd",
        "error_code",
        "block_reason",
        "routing_category",
        "routing_confidence",
        "signals",
        "router_version",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "batch",
    )

    @admin.display(description="owner", ordering="user__username")
    def owner(self, image: GeneratedImage) -> str:
        return image.user.get_username()

    @admin.display(description="image")
    def image_preview(self, image: GeneratedImage) -> str:
        return image_tag(image, max_width=640, max_height=480) or "No stored image."

    @admin.display(description="signals")
    def signals(self, image: GeneratedImage) -> str:
        items = format_html_join("", "<li>{}</li>", ((signal,) for signal in image.routing_signals))
        return format_html("<ul>{}</ul>", items) if items else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Images come from generation (API, commands), never from a blank form.
        return False

    def save_model(
        self, request: HttpRequest, obj: GeneratedImage, form: forms.ModelForm, change: bool
    ) -> None:
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        if changed:
            services.image_update(image=obj, **changed)

    def delete_model(self, request: HttpRequest, obj: GeneratedImage) -> None:
        services.image_delete(image=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for image in queryset:
            services.image_delete(image=image)

    @admin.action(
        description="Regenerate selected images (new image from the current prompt and style)",
        permissions=("change",),
    )
    def regenerate_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponseRedirect | None:
        images = list(queryset[: MAX_REGENERATE_AT_ONCE + 1])
        if not images:
            self.message_user(request, SELECTION_GONE.format(done="regenerated"), messages.WARNING)
            return None
        if len(images) > MAX_REGENERATE_AT_ONCE:
            self.message_user(
                request,
                f"Select at most {MAX_REGENERATE_AT_ONCE} images to regenerate at once; "
                "nothing was regenerated.",
                messages.ERROR,
            )
            return None
        regenerated, failures, left = [], [], []
        for index, image in enumerate(images):
            try:
                services.image_regenerate(image=image)
            except StorageUnavailable as exc:
                # Each further one would pay its vendor and then wait out the storage's retries
                # too (half a minute each): the request would outlive the server's timeout.
                failures.append(f"{image.uuid}: {exc.message}")
                left = [other.uuid for other in images[index + 1 :]]
                break
            except ServiceError as exc:
                failures.append(f"{image.uuid}: {exc.message}")
            except Exception as exc:  # logged by image_run; the other images still go
                failures.append(
                    f"{image.uuid}: unexpected error ({type(exc).__name__}); it has been logged"
                )
            else:
                regenerated.append(image.uuid)
        if regenerated:
            self.message_user(
                request,
                f"Regenerated {len(regenerated)} image(s): {', '.join(regenerated)}.",
                messages.SUCCESS,
            )
        if failures:
            self.message_user(
                request,
                f"{len(failures)} image(s) failed to regenerate: {'; '.join(failures)}",
                messages.ERROR,
            )
        if left:
            self.message_user(
                request,
                f"Not attempted, as the storage is unavailable ({len(left)}): "
                f"{', '.join(left)}. Select them again once it is back.",
                messages.WARNING,
            )
        if "_changeform" in request.POST and len(images) == 1:
            # Pressed on the image's own page: go back to it.
            return HttpResponseRedirect(
                reverse("admin:imagegen_generatedimage_change", args=(images[0].pk,))
            )
        return None

    @admin.action(description="Export selected images as CSV", permissions=("view",))
    def export_as_csv(
        self, request: HttpRequest, queryset: QuerySet
    ) -> StreamingHttpResponse | None:
        if not queryset.exists():
            self.message_user(request, SELECTION_GONE.format(done="exported"), messages.WARNING)
            return None
        rows = queryset.select_related("project", "user").order_by("created_at", "id")
        response = StreamingHttpResponse(_csv_lines(rows.iterator()), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="images.csv"'
        return response


class _Line:
    """A file-like object whose `write` hands the CSV line back (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return f"'{value}"
    return value


def _csv_lines(images: Iterable[GeneratedImage]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_COLUMNS)
    for image in images:
        values = {
            "project": image.project.name,
            "owner": image.user.get_username(),
            "created_at": image.created_at.isoformat(),
        }
        yield writer.writerow(
            _csv_cell(values[column] if column in values else getattr(image, column))
            for column in EXPORT_COLUMNS
        )
