"""What every admin page of ours shares: query parameters that cannot fail with a 500, filters
that always apply, and inlines that stay small."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db import DatabaseError, transaction
from django.http import HttpRequest

# What a lookup Django accepted from the URL raises once it is built or run.
IMPOSSIBLE_LOOKUP = (ValueError, OverflowError, IndexError, DatabaseError)


class GuardedChangeList(ChangeList):
    """A changelist whose impossible query parameters get the admin's own "invalid lookup"
    redirect (`?e=1`) instead of a 500: a date the calendar cannot hold
    (`?created_at__year=9999`), a malformed lookup (`?id__range=a`), or one PostgreSQL refuses
    (an invalid `?name__regex=(`), which Django lets staff type into the URL."""

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except IMPOSSIBLE_LOOKUP as exc:
            raise IncorrectLookupParameters(exc) from exc

    def get_results(self, request: HttpRequest) -> None:
        try:
            # In a savepoint: a query PostgreSQL refuses must not abort an enclosing transaction.
            with transaction.atomic():
                super().get_results(request)
        except IMPOSSIBLE_LOOKUP as exc:
            raise IncorrectLookupParameters(exc) from exc


class GuardedChangeListMixin:
    """For a ModelAdmin: its changelist is a `GuardedChangeList`."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return GuardedChangeList


class RelatedOnlyFilter(admin.RelatedOnlyFieldListFilter):
    """Filter by a related object, among those that have rows here, and always apply when used.

    Django drops a related filter with fewer than two choices from the changelist, and its
    query parameter with it: `?project__id__exact=<a project with no images>` then listed every
    project's images, ready to be exported or deleted. In use, it is kept, and filters.
    """

    def has_output(self) -> bool:
        return bool(self.used_parameters) or super().has_output()

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list:
        """The related objects with rows here, and the one filtered by, so the sidebar shows
        which it is even when it has none."""
        choices = super().field_choices(field, request, model_admin)
        listed = {str(pk) for pk, _ in choices}
        wanted = [value for value in self.lookup_val or () if value not in listed]
        if wanted:
            choices += field.get_choices(
                include_blank=False,
                limit_choices_to={"pk__in": wanted},
                ordering=self.field_admin_ordering(field, request, model_admin),
            )
        return choices


class NewestInline(admin.TabularInline):
    """A read-only inline of the `max_shown` newest rows, each linking to its own page.

    All of a project's images inline made a page of thousands of rows: seconds to render, and
    more hidden fields than Django reads from a post (DATA_UPLOAD_MAX_NUMBER_FIELDS), so the
    project could no longer be saved. The parent's page links to the full, filterable list.
    """

    max_shown = 20
    ordering = ("-created_at", "-pk")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> type:
        formset = super().get_formset(request, obj, **kwargs)
        limit = self.max_shown

        class NewestFormSet(formset):
            def get_queryset(self) -> Any:
                if not hasattr(self, "_newest"):
                    self._newest = super().get_queryset()[:limit]
                return self._newest

        return NewestFormSet
