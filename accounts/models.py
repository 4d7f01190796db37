"""The user model: Django's username + password user, swappable from day one."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person or pipeline that owns projects."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
