"""Write side of projects: create, rename and delete (with their stored images)."""

from __future__ import annotations

from django.db import transaction

from imagegen.exceptions import ProjectGone
from imagegen.services import delete_objects_on_commit, object_keys
from projects.models import Project


def project_create(*, user, name: str) -> Project:
    """A new project owned by `user`."""
    return Project.objects.create(owner=user, name=name)


@transaction.atomic
def project_rename(*, project: Project, name: str) -> Project:
    """Rename `project`. Raises `ProjectGone` when it was deleted meanwhile."""
    # A key-preserving lock: generations recording images for it go on meanwhile.
    if not Project.objects.select_for_update(no_key=True).filter(pk=project.pk).exists():
        raise ProjectGone
    project.name = name
    project.save(update_fields=["name", "updated_at"])
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project, its image rows, and (after commit) their stored objects.

    The project's row is locked first: a generation or batch recording images for it
    (`Project.objects.lock_for_images`) finishes before, and its images go too, or starts after, and
    finds no project. Then its images' rows: a run recording its result (attempts) commits
    before, and the cascade collects what it wrote.
    """
    Project.objects.select_for_update().filter(pk=project.pk).exists()
    images = project.images.select_for_update().values_list("project_id", "uuid", "s3_key")
    delete_objects_on_commit(object_keys(list(images)))
    project.delete()
