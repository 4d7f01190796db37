"""Staff pages for users: Django's user admin plus the projects each user owns."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from config.admin import GuardedChangeListMixin, NewestInline
from projects import services as project_services
from projects.models import Project


class ProjectInline(NewestInline):
    """The user's newest projects, read-only; each links to its page with its images."""

    model = Project
    fk_name = "owner"
    verbose_name_plural = f"projects (the {NewestInline.max_shown} newest)"
    fields = ("name", "id", "created_at")
    readonly_fields = fields


@admin.register(User)
class ImagegenUserAdmin(GuardedChangeListMixin, UserAdmin):
    inlines = (ProjectInline,)

    @transaction.atomic
    def delete_model(self, request: HttpRequest, obj: User) -> None:
        # Through the project service, so the stored images go too (after commit).
        for project in obj.projects.all():
            project_services.project_delete(project=project)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            self.delete_model(request, user)
