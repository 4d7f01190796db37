"""Project: a video a user is making; it owns the generated images of its segments."""

from django.conf import settings
from django.db import connection, models

from config.ids import ID_LENGTH, new_id


class ProjectManager(models.Manager):
    def lock_for_images(self, project_id: str) -> bool:
        """Hold the project's row until the current transaction ends, against its deletion
        only (other generations for it go on); False when the project is gone.

        Without it, a project deleted while a batch was recording images for it failed one of
        the two at commit with a foreign-key error (a 500), or left a claim retrying as if its
        uuid were taken.
        """
        if connection.vendor != "postgresql":
            return self.filter(pk=project_id).exists()  # SQLite writes one at a time
        with connection.cursor() as cursor:
            # FOR KEY SHARE: what inserting a row that refers to the project takes anyway, so
            # requests for one project never wait for each other; DELETE waits for them.
            cursor.execute(
                "SELECT 1 FROM projects_project WHERE id = %s FOR KEY SHARE", [project_id]
            )
            return cursor.fetchone() is not None


class Project(models.Model):
    id = models.CharField(primary_key=True, max_length=ID_LENGTH, default=new_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectManager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("owner", "-created_at"), name="project_owner_created"),)

    def __str__(self) -> str:
        return self.name
