"""Project: a video a user is making; it owns the generated images of its segments."""

from django.conf import settings
from django.db import models

from config.ids import ID_LENGTH, new_id


class Project(models.Model):
    id = models.CharField(primary_key=True, max_length=ID_LENGTH, default=new_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("owner", "-created_at"), name="project_owner_created"),)

    def __str__(self) -> str:
        return self.name
