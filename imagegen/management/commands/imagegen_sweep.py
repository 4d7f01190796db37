"""`manage.py imagegen_sweep`: settle generations whose worker died (what Celery beat runs)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from config.commands import OperatorCommand
from imagegen.services import images_sweep_stale


class Command(OperatorCommand):
    help = (
        "Finds generations active for longer than IMAGEGEN_RUNNING_LEASE seconds: a `running` "
        "image is queued again once and failed the second time; a `pending` image whose task was "
        "lost is queued again. Celery beat runs the same sweep every IMAGEGEN_SWEEP_INTERVAL s."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = images_sweep_stale()
        self.stdout.write(
            f"Lease {settings.IMAGEGEN_RUNNING_LEASE} s: {len(result.requeued)} queued again, "
            f"{len(result.failed)} failed."
        )
        for image_id in result.requeued:
            self.stdout.write(f"  queued again  {image_id}")
        for image_id in result.failed:
            self.stdout.write(f"  failed        {image_id}")
