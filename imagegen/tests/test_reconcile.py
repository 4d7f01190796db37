"""`manage.py imagegen_reconcile` on S3 (moto) and the file system."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from botocore.config import Config
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from conftest import S3_BUCKET, S3_CREDENTIALS, _s3_storages
from imagegen import services
from imagegen.management.commands.imagegen_reconcile import Command
from imagegen.models import GeneratedImage
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import post_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def storage(any_storage, s3_client) -> str:
    """Both backends, starting with nothing under images/ (the moto bucket lives per session)."""
    if any_storage == "s3":
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=S3_BUCKET, Key=item["Key"])
    return any_storage


def store(key: str) -> str:
    saved = default_storage.save(key, ContentFile(b"jpeg bytes"))
    assert saved == key
    return key


def reconcile(*args: str) -> str:
    out = StringIO()
    call_command("imagegen_reconcile", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def mixed(project):
    """A healthy image, two orphans (one nested), a broken row, a running row, a foreign file."""
    healthy = GeneratedImageFactory(project=project)
    store(healthy.s3_key)
    broken = GeneratedImageFactory(project=project)
    GeneratedImageFactory(project=project, status="running", s3_key="", started_at=timezone.now())
    return {
        "healthy": healthy,
        "broken": broken,
        "orphans": [
            store(f"images/{project.id}/abandoned.jpg"),
            store(f"images/{project.id}/uploads/old-upload.jpg"),
        ],
        "foreign": store("exports/report.csv"),
    }


def test_report_lists_orphans_and_broken_rows_and_changes_nothing(storage, mixed):
    output = reconcile()

    assert "Checked 3 stored objects under images/ and 2 finished rows" in output
    assert "Orphan objects (no row refers to them): 2" in output
    for key in mixed["orphans"]:
        assert f"  {key}\n" in output
    assert "Rows whose object is missing: 1" in output
    assert f"  image {mixed['broken'].id}: {mixed['broken'].s3_key}\n" in output
    assert "run again with --fix" in output
    assert all(default_storage.exists(key) for key in mixed["orphans"])
    assert GeneratedImage.objects.get(pk=mixed["broken"].pk).status == "succeeded"


def test_fix_deletes_old_orphans_and_marks_broken_rows_failed(storage, mixed):
    output = reconcile("--fix", "--grace-minutes", "0")

    assert "Deleted 2 orphan objects" in output
    assert "Marked 1 rows failed (object_missing)" in output
    assert not any(default_storage.exists(key) for key in mixed["orphans"])
    assert default_storage.exists(mixed["healthy"].s3_key)
    assert default_storage.exists(mixed["foreign"])
    broken = GeneratedImage.objects.get(pk=mixed["broken"].pk)
    assert (broken.status, broken.error_code, broken.s3_key) == ("failed", "object_missing", "")
    assert mixed["broken"].s3_key in broken.message
    assert GeneratedImage.objects.get(pk=mixed["healthy"].pk).status == "succeeded"


def test_fix_keeps_orphans_written_within_the_grace_period(storage, mixed):
    output = reconcile("--fix")

    assert "Deleted 0 orphan objects (kept 2 written in the last 60 minutes" in output
    assert all(default_storage.exists(key) for key in mixed["orphans"])


def test_grace_period_goes_by_the_storages_modified_time(file_storage, project):
    old = store(f"images/{project.id}/old.jpg")
    recent = store(f"images/{project.id}/recent.jpg")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(default_storage.path(old), (two_hours_ago, two_hours_ago))

    reconcile("--fix")

    assert not default_storage.exists(old)
    assert default_storage.exists(recent)


def test_second_run_finds_nothing_left(storage, mixed):
    reconcile("--fix", "--grace-minutes", "0")

    output = reconcile("--fix", "--grace-minutes", "0")

    assert "Orphan objects (no row refers to them): 0" in output
    assert "Rows whose object is missing: 0" in output


def test_marked_row_is_generated_again_by_the_same_request(storage, api, project, vendors):
    vendors.recraft()
    first = post_image(api, project).json()
    default_storage.delete(first["s3_key"])
    reconcile("--fix")

    again = post_image(api, project)

    assert again.status_code == 201, again.json()
    assert again.json()["id"] == first["id"]
    assert default_storage.exists(first["s3_key"])
    assert len(vendors.mock.calls) == 2


def test_rows_written_after_the_listing_began_are_not_reported(storage, project):
    just_finished = GeneratedImageFactory(project=project)
    GeneratedImage.objects.filter(pk=just_finished.pk).update(
        updated_at=timezone.now() + timedelta(seconds=5)
    )

    output = reconcile("--fix")

    assert "Rows whose object is missing: 0" in output
    assert GeneratedImage.objects.get(pk=just_finished.pk).status == "succeeded"


def test_object_claimed_by_a_row_since_the_listing_is_not_deleted(storage, project):
    key = store(f"images/{project.id}/claimed.jpg")
    GeneratedImageFactory(project=project, s3_key=key)

    outcome = services.orphan_delete(key=key, written_before=timezone.now())

    assert outcome is services.OrphanOutcome.KEPT
    assert default_storage.exists(key)


def test_row_whose_object_came_back_is_not_marked(storage, project):
    image = GeneratedImageFactory(project=project)
    store(image.s3_key)

    marked = services.image_mark_missing(image_id=image.pk, key=image.s3_key)

    assert marked is False
    assert GeneratedImage.objects.get(pk=image.pk).status == "succeeded"


def test_empty_storage_is_reported_as_such(file_storage):
    output = reconcile()

    assert "Checked 0 stored objects under images/ and 0 finished rows" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grace-minutes", "-1"], "--grace-minutes must be from 0 to 525600, not -1"),
        (["--grace-minutes", "2000000000"], "--grace-minutes must be from 0 to 525600"),
        (["--grace-minutes", "soon"], "invalid int value"),
        (["--delete-everything"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_a_command_error(args, message):
    with pytest.raises(CommandError, match=message):
        reconcile(*args)


def test_help_explains_what_it_does_and_its_options():
    text = Command().create_parser("manage.py", "imagegen_reconcile").format_help()

    for phrase in ("orphans", "missing", "--fix", "--grace-minutes", "Default: 60", "report only"):
        assert phrase in text


def reconcile_failing(*args: str) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("imagegen_reconcile", *args, stdout=out)
    return out.getvalue(), failure.value


def test_fix_skips_an_object_gone_since_the_listing_and_carries_on(storage, mixed, monkeypatch):
    gone = f"images/{mixed['healthy'].project_id}/deleted-meanwhile.jpg"
    listed = list(services.stored_keys())
    monkeypatch.setattr(services, "stored_keys", lambda: iter([*listed, gone]))

    output, failure = reconcile_failing("--fix", "--grace-minutes", "0")

    assert "Deleted 2 orphan objects" in output
    assert "Marked 1 rows failed (object_missing)" in output
    assert f"Skipped 1 objects:\n  {gone}: gone since the listing, or a link to nothing\n" in output
    assert not any(default_storage.exists(key) for key in mixed["orphans"])
    assert failure.returncode == 1
    assert str(failure) == "1 objects were skipped (see above); run imagegen_reconcile again."


def test_fix_skips_a_dangling_link(file_storage, project):
    old = store(f"images/{project.id}/old.jpg")
    link = Path(file_storage) / "images" / project.id / "dangling.jpg"
    link.symlink_to(Path(file_storage) / "nowhere.jpg")

    output, failure = reconcile_failing("--fix", "--grace-minutes", "0")

    assert "Deleted 1 orphan objects" in output
    assert (
        f"  images/{project.id}/dangling.jpg: gone since the listing, or a link to nothing"
        in output
    )
    assert not default_storage.exists(old)
    assert link.is_symlink()
    assert failure.returncode == 1


def test_a_name_that_is_not_utf8_is_reported_and_left_alone(file_storage, project):
    old = store(f"images/{project.id}/old.jpg")
    folder = Path(file_storage) / "images" / project.id
    odd = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.jpg"))
    odd.write_bytes(b"jpeg bytes")

    report = reconcile()
    output, failure = reconcile_failing("--fix", "--grace-minutes", "0")

    shown = f"images/{project.id}/caf\\udce9.jpg"
    assert f"Objects whose name is not UTF-8 (no row can refer to them): 1\n  {shown}\n" in report
    assert "Orphan objects (no row refers to them): 1\n" in report
    assert "Deleted 1 orphan objects" in output
    assert f"  {shown}: its name is not UTF-8; rename or remove it by hand" in output
    assert not default_storage.exists(old)
    assert odd.exists()
    assert failure.returncode == 1


@pytest.mark.parametrize("fix", [False, True])
def test_a_storage_that_cannot_be_reached_is_named_in_one_line(settings, fix):
    # Nothing listens on the endpoint: the listing is refused (it printed botocore's
    # 115-line traceback). The line names the bucket and the endpoint, never a credential.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{unused.getsockname()[1]}"
    storages = _s3_storages(endpoint)
    storages["default"]["OPTIONS"]["client_config"] = Config(retries={"total_max_attempts": 1})
    settings.STORAGES = storages

    with pytest.raises(CommandError) as refused:
        call_command("imagegen_reconcile", *(["--fix"] if fix else []), stdout=StringIO())

    message = str(refused.value)
    assert message.startswith(f"Cannot reach the storage (S3 bucket {S3_BUCKET} at {endpoint})")
    assert "\n" not in message
    assert S3_CREDENTIALS["secret_key"] not in message
