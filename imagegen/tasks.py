"""Celery tasks of image generation; each one calls one service."""

from __future__ import annotations

import contextlib
import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from config.exceptions import ServiceError
from imagegen import services
from imagegen.exceptions import ProvidersFailed, ProvidersTimedOut, StorageUnavailable

logger = logging.getLogger(__name__)

# Faults that may pass (a vendor outage, a storage hiccup); a refused prompt would be refused again.
RETRYABLE_FAILURES = (ProvidersFailed, ProvidersTimedOut, StorageUnavailable)


@shared_task(bind=True, name="imagegen.generate_image", acks_late=True, max_retries=None)
def generate_image(self: Task, image_id: str) -> str:
    """Generate a queued image; returns its final status, or `skipped` when it was not pending.

    Delivered twice, it generates once (the row's status decides). On provider, storage or
    database faults the row goes back to `pending` and the task runs again later,
    `IMAGEGEN_TASK_RETRIES` times.
    """
    try:
        image = services.image_run_task(image_id=image_id)
    except RETRYABLE_FAILURES as exc:
        delay = _retry_delay(self)
        if delay is not None and services.image_requeue(image_id=image_id, delay=delay):
            logger.info(
                "generate_image_retry image=%s in=%.0fs after=%s", image_id, delay, exc.code
            )
            raise self.retry(countdown=delay) from exc
        return "failed"
    except (OperationalError, InterfaceError) as exc:
        # The database went away (a restart, a failover). A row that failed with it goes back
        # to `pending`; one it left `running` is the sweep's once its lease is out.
        delay = _retry_delay(self)
        if delay is None:
            raise
        with contextlib.suppress(DatabaseError):
            services.image_requeue(image_id=image_id, delay=delay)
        logger.warning("generate_image_retry image=%s in=%.0fs after=database", image_id, delay)
        raise self.retry(countdown=delay) from exc
    except ServiceError:
        # Recorded on the row (e.g. the content was refused); running it again would not help.
        return "failed"
    return image.status if image is not None else "skipped"


def _retry_delay(task: Task) -> float | None:
    """Seconds before the task's next run (doubling each time), or None when its
    `IMAGEGEN_TASK_RETRIES` are used up."""
    retries = task.request.retries
    if retries >= settings.IMAGEGEN_TASK_RETRIES:
        return None
    return settings.IMAGEGEN_TASK_RETRY_DELAY * 2**retries


@shared_task(name="imagegen.delete_objects", acks_late=True)
def delete_objects(keys: list[str]) -> int:
    """Delete the stored objects of deleted images (see `services.objects_delete`); returns
    how many keys it was given."""
    services.objects_delete(keys=keys)
    return len(keys)


@shared_task(name="imagegen.sweep_stale")
def sweep_stale() -> dict[str, int]:
    """The periodic sweep (Celery beat): see `services.images_sweep_stale`."""
    result = services.images_sweep_stale()
    return {"requeued": len(result.requeued), "failed": len(result.failed)}
