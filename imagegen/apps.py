"""App configuration for imagegen: registers its system checks."""

from django.apps import AppConfig


class ImagegenConfig(AppConfig):
    name = "imagegen"
    verbose_name = "Image generation"

    def ready(self) -> None:
        from imagegen import checks  # noqa: F401  (registers the checks)
