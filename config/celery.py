"""The Celery app (`celery -A config worker`), configured from Django's CELERY_* settings."""

import os

from celery import Celery
from celery.signals import worker_init

# Like config.wsgi, a worker runs production settings unless told otherwise: a worker started
# without vendor keys must refuse to start, not draw offline sketches.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def warm_up_worker(**kwargs: object) -> None:
    """Load what the first tasks would otherwise load while answering (config/warmup.py)."""
    from config.warmup import warm_up

    warm_up()
