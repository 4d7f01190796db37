"""Write side of projects: create and delete (with their stored images)."""

from __future__ import annotations

from django.db import transaction

from imagegen.services import delete_objects_on_commit
from projects.models import Project


def project_create(*, user, name: str) -> Project:
    """A new project owned by `user`."""
    return Project.objects.create(owner=user, name=name)


def project_rename(*, project: Project, name: str) -> Project:
    project.name = name
    project.save(update_fields=["name", "updated_at"])
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project, its image rows, and (after commit) their stored objects."""
    keys = list(project.images.exclude(s3_key="").values_list("s3_key", flat=True))
    delete_objects_on_commit(keys)
    project.delete()
