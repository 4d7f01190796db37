"""App configuration for imagegen: registers its system checks and tunes the allocator."""

from django.apps import AppConfig


class ImagegenConfig(AppConfig):
    name = "imagegen"
    verbose_name = "Image generation"

    def ready(self) -> None:
        from imagegen import checks  # noqa: F401  (registers the checks)
        from imagegen.imaging import tune_allocator

        # Every process of the project converts images: web and Celery workers, commands.
        tune_allocator()
