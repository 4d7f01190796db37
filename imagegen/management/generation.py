"""What the generation commands share: find the project, validate like the API, generate, answer."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandError

from config.exceptions import validation_message
from config.ids import ID_PATTERN
from config.text import shown
from imagegen import services
from imagegen.serializers import (
    PROJECT_ID_MESSAGE,
    GenerationAnswerSerializer,
    ImageGenerateSerializer,
)
from projects.models import Project


def get_project(project_id: str) -> Project:
    """The project, or a `CommandError` that says how to find a valid id."""
    where = "Project ids are listed in the admin (/admin/projects/project/) and by GET /projects."
    if not re.fullmatch(ID_PATTERN, project_id):
        raise CommandError(
            f"--project {shown(project_id)} is not a project id: {PROJECT_ID_MESSAGE} {where}"
        )
    project = Project.objects.select_related("owner").filter(pk=project_id).first()
    if project is None:
        raise CommandError(f"No project with id {project_id!r}. {where}")
    return project


def validate_item(item: dict[str, Any], *, project: Project) -> dict[str, Any]:
    """The item checked by the API's own serializer; `CommandError` with the API's message."""
    serializer = ImageGenerateSerializer(data={**item, "projectId": project.pk})
    if not serializer.is_valid():
        raise CommandError(validation_message(serializer.errors))
    return serializer.validated_data


def generate(item: dict[str, Any], *, project: Project) -> services.GenerationOutcome:
    """Generate one validated item as the project's owner. Raises what `image_generate` raises."""
    return services.image_generate(
        user=project.owner,
        project=project,
        visual_prompt=item["visual_prompt"],
        art_style=item["art_style"],
        uuid=item["uuid"],
        model=item["model"],
        aspect_ratio=item.get("aspect_ratio"),
    )


def answer(outcome: services.GenerationOutcome) -> dict[str, Any]:
    """The JSON body `POST /image-gen` answers for this outcome."""
    return GenerationAnswerSerializer(outcome.image, context={"message": outcome.message}).data
