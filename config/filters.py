"""A list's query parameters are its filters and its paging, each given once.

Anything else is refused (400) rather than ignored: a misspelt filter (`?projectid=`) would
otherwise answer the whole list, as if the caller had asked for everything, and a filter given
twice would be read once.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request


class ListQueryParameters(BaseFilterBackend):
    """First of the filter backends: checks a list request's query parameters, and leaves a
    request for one object (which `get_object` filters too) alone."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", None)
        if lookup in getattr(view, "kwargs", {}):
            return queryset
        takes = list(self._filters(view)) + self._paging(view)
        for name, values in request.query_params.lists():
            if name not in takes:
                message = f"Unknown query parameter; this list takes {_spoken(takes)}."
                raise ValidationError({name or "(no name)": [message]})
            if len(values) > 1:
                raise ValidationError({name: [f"Given {len(values)} times; give it once."]})
        return queryset

    @staticmethod
    def _filters(view: Any) -> list[str]:
        filterset = getattr(view, "filterset_class", None)
        return list(filterset.base_filters) if filterset is not None else []

    @staticmethod
    def _paging(view: Any) -> list[str]:
        paginator = getattr(view, "paginator", None)
        names = ("page_size_query_param", "cursor_query_param")
        return [getattr(paginator, name) for name in names if getattr(paginator, name, None)]


def _spoken(names: list[str]) -> str:
    """ "a, b and c"; "none" for no names."""
    if len(names) < 2:
        return names[0] if names else "none"
    return f"{', '.join(names[:-1])} and {names[-1]}"
