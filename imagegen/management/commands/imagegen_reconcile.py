"""`manage.py imagegen_reconcile`: stored objects without a row, rows without their object."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from config.commands import OperatorCommand
from config.text import printable
from imagegen import services
from imagegen.services import OrphanOutcome

# A year: an orphan younger than that is as good as never deleted.
MAX_GRACE_MINUTES = 525_600


class Command(OperatorCommand):
    help = (
        "Compare the stored images (every object under images/ in the default storage, S3 or "
        "the file system) with the image rows, and report objects that no row refers to "
        "(orphans) and succeeded or failed rows whose object is missing. Nothing changes "
        "without --fix. With --fix, orphans older than the grace period are deleted and broken "
        "rows are marked failed (error_code object_missing), so that sending the same request "
        "again generates a new image. An object --fix cannot act on (gone since the listing, a "
        "link to nothing, a file name that is not UTF-8) is skipped and listed, and the command "
        "then exits 1. Safe to run while the API serves requests."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Delete old orphans and mark broken rows failed. Without it: report only.",
        )
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=60,
            metavar="MINUTES",
            help="Keep orphans written less than MINUTES ago (by the storage's modified time): "
            "a generation stores its object just before its row commits. Default: 60.",
        )

    def handle(self, *args: Any, fix: bool, grace_minutes: int, **options: Any) -> None:
        if not 0 <= grace_minutes <= MAX_GRACE_MINUTES:
            raise CommandError(
                f"--grace-minutes must be from 0 to {MAX_GRACE_MINUTES}, not {grace_minutes}."
            )
        cutoff = timezone.now() - timedelta(minutes=grace_minutes)
        report = services.storage_inconsistencies()
        self.stdout.write(
            f"Checked {report.objects} stored objects under {services.IMAGES_PREFIX}/ and "
            f"{report.rows} finished rows with a stored key."
        )
        self.stdout.write(f"Orphan objects (no row refers to them): {len(report.orphans)}")
        for key in report.orphans:
            self.stdout.write(f"  {key}")
        self.stdout.write(f"Rows whose object is missing: {len(report.missing)}")
        for image_id, key in report.missing:
            self.stdout.write(f"  image {image_id}: {key}")
        if report.misnamed:
            count = len(report.misnamed)
            self.stdout.write(
                f"Objects whose name is not UTF-8 (no row can refer to them): {count}"
            )
            for key in report.misnamed:
                self.stdout.write(f"  {printable(key)}")
        if not fix:
            if report.orphans or report.missing:
                self.stdout.write("Nothing changed; run again with --fix to repair.")
            return
        outcomes = {
            key: services.orphan_delete(key=key, written_before=cutoff) for key in report.orphans
        }
        deleted = sum(outcome is OrphanOutcome.DELETED for outcome in outcomes.values())
        kept = sum(outcome is OrphanOutcome.KEPT for outcome in outcomes.values())
        marked = sum(
            services.image_mark_missing(image_id=image_id, key=key)
            for image_id, key in report.missing
        )
        skipped = [
            *(
                (key, "gone since the listing, or a link to nothing")
                for key, outcome in outcomes.items()
                if outcome is OrphanOutcome.GONE
            ),
            *(
                (key, "its name is not UTF-8; rename or remove it by hand")
                for key in report.misnamed
            ),
        ]
        style = self.style.WARNING if skipped else self.style.SUCCESS
        self.stdout.write(
            style(
                f"Deleted {deleted} orphan objects (kept {kept} written in the last "
                f"{grace_minutes} minutes or claimed since). "
                f"Marked {marked} rows failed (object_missing)."
            )
        )
        if skipped:
            self.stdout.write(f"Skipped {len(skipped)} objects:")
            for key, reason in skipped:
                self.stdout.write(f"  {printable(key)}: {reason}")
            # Not settled: a run from cron must say so. An object that went during this run is
            # not listed by the next one, so running again tells a race from a lasting problem.
            raise CommandError(
                f"{len(skipped)} objects were skipped (see above); run imagegen_reconcile again."
            )
