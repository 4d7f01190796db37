"""The user model: Django's username + password user, swappable from day one."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person or pipeline that owns projects."""

    is_demo = models.BooleanField(
        default=False,
        editable=False,
        help_text="Made by manage.py bootstrap_demo, which may reset its password.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
