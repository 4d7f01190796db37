"""Load at worker start what a worker's first requests would otherwise load while answering.

A fresh gunicorn worker (after a deploy, or recycled after `max_requests`) imports the views,
JWT's token backend and Pillow's plugins, builds the boto3 resource (botocore's S3 model: 60-150
ms of CPU) and the provider clients on its first requests. When a burst is what reaches it, dozens
of threads do that at once and queue on the import locks: measured in bench/burst.py, a cold
worker spent a third of its request time there. `warm_up()` does it once, before the first
request, without touching the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _views() -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports every URLconf and view module)


def _token_backend() -> None:
    import rest_framework_simplejwt.state  # noqa: F401  (imported by name on every token check)


def _image_plugins() -> None:
    from PIL import Image

    Image.init()  # every format's plugin, WebP included (Pillow loads them on first need)


def _storage() -> None:
    from django.core.files.storage import default_storage

    connection = getattr(default_storage, "connection", None)  # S3: the shared boto3 resource
    if connection is not None:
        connection.meta.client  # noqa: B018


def _providers() -> None:
    from imagegen.providers.registry import get_providers

    get_providers()


STEPS: tuple[Callable[[], None], ...] = (
    _views,
    _token_backend,
    _image_plugins,
    _storage,
    _providers,
)


def warm_up() -> None:
    """Run every step; one that fails is logged and skipped (the request that needs it will
    fail or succeed on its own, as without the warm-up)."""
    for step in STEPS:
        try:
            step()
        except Exception:
            logger.warning("warm_up step %s failed", step.__name__, exc_info=True)
