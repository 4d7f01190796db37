"""The staff admin: browsing, inspecting, editing through the service, regenerating, exporting."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import PASSWORD, UserFactory
from imagegen import services
from imagegen.admin import MAX_REGENERATE_AT_ONCE
from imagegen.exceptions import GenerationInProgress, ProvidersFailed
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory, GenerationAttemptFactory
from projects.models import Project
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

IMAGES = reverse("admin:imagegen_generatedimage_changelist")
PROJECTS = reverse("admin:projects_project_changelist")


def change_url(image: GeneratedImage) -> str:
    return reverse("admin:imagegen_generatedimage_change", args=(image.pk,))


def stored_image(**fields) -> GeneratedImage:
    """An image row with a real JPEG behind its key."""
    image = GeneratedImageFactory(**fields)
    default_storage.save(image.s3_key, ContentFile(vendor_payloads.image_bytes("JPEG")))
    return image


def shown(response, images) -> set[str]:
    """Which of `images` the changelist shows (by their change links)."""
    html = response.content.decode()
    return {image.uuid for image in images if change_url(image) in html}


def change_form_data(client, url: str, **changes: str) -> dict[str, str]:
    """The change form as the browser would submit it, with `changes` applied."""
    context = client.get(url).context
    data = {
        name: "" if value is None else value
        for name, value in context["adminform"].form.initial.items()
        if name in context["adminform"].form.fields
    }
    for inline in context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    return {**data, **changes}


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# ---------------------------------------------------------------------------------------------
# Every page renders, staff only.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("admin:index", None),
        ("admin:imagegen_generatedimage_changelist", None),
        ("admin:imagegen_generatedimage_change", "image"),
        ("admin:projects_project_changelist", None),
        ("admin:projects_project_add", None),
        ("admin:projects_project_change", "project"),
        ("admin:accounts_user_changelist", None),
        ("admin:accounts_user_add", None),
        ("admin:accounts_user_change", "user"),
    ],
)
def test_every_admin_page_renders_for_staff(admin_client, name, target):
    image = stored_image()
    args = {None: (), "image": (image.pk,), "project": (image.project_id,)}
    args["user"] = (image.user_id,)

    response = admin_client.get(reverse(name, args=args[target]))

    assert response.status_code == 200


def test_admin_is_named_and_links_to_the_api_docs(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert "<title>Images, projects and users | Image generation admin</title>" in html
    assert '<a href="/docs">View site</a>' in html


def test_non_staff_user_is_sent_to_the_login_page(client, user):
    client.force_login(user)

    response = client.get(IMAGES)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_non_staff_user_cannot_log_in_to_the_admin(client, user):
    response = client.post(
        reverse("admin:login"), {"username": user.username, "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "correct username and password for a staff account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_without_permissions_is_refused(client):
    client.force_login(UserFactory(is_staff=True))

    assert client.get(IMAGES).status_code == 403


def test_images_are_never_added_from_a_blank_form(admin_client):
    response = admin_client.get(reverse("admin:imagegen_generatedimage_add"))

    assert response.status_code == 403


# ---------------------------------------------------------------------------------------------
# The image list.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changelist",
    [IMAGES, PROJECTS, reverse("admin:accounts_user_changelist")],
)
def test_changelist_queries_do_not_grow_with_rows(admin_client, changelist):
    GeneratedImageFactory.create_batch(2)
    admin_client.get(changelist)  # warms process-wide caches (content types)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(changelist)
    GeneratedImageFactory.create_batch(8)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(changelist)

    assert len(many) == len(few)


def test_project_page_queries_do_not_grow_with_its_images(admin_client):
    project = ProjectFactory()
    GeneratedImageFactory.create_batch(2, project=project)
    url = reverse("admin:projects_project_change", args=(project.pk,))
    admin_client.get(url)  # warms process-wide caches (content types)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    GeneratedImageFactory.create_batch(8, project=project)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)

    assert len(many) == len(few)


def test_changelist_shows_the_columns_that_matter(admin_client):
    image = stored_image(
        visual_prompt="A lighthouse on a cliff at dawn " + "with crashing waves " * 10,
        art_style="oil painting",
        cost_usd=Decimal("0.035"),
    )

    html = admin_client.get(IMAGES).content.decode()

    for text in (
        image.uuid,
        "A lighthouse on a cliff at dawn",
        "oil painting",
        "recraft-ai",
        "recraftv4_1",
        "245760",
        "0.035",
        image.project.name,
        image.user.username,
        'alt="True"',  # the success icon
    ):
        assert text in html
    assert "with crashing waves " * 10 not in html  # the prompt is an excerpt


def test_thumbnail_is_a_signed_url_on_s3(admin_client):
    image = stored_image()

    html = admin_client.get(IMAGES).content.decode()

    assert f"/imagegen-test/{image.s3_key}?" in html
    assert "Signature=" in html


def test_thumbnail_is_a_media_url_on_the_file_system(admin_client, file_storage):
    image = stored_image()

    html = admin_client.get(IMAGES).content.decode()

    assert f'src="/media/{image.s3_key}"' in html


def test_failed_image_has_no_thumbnail(admin_client):
    image = GeneratedImageFactory(status=GeneratedImage.Status.FAILED, s3_key="")

    html = admin_client.get(change_url(image)).content.decode()

    assert "No stored image." in html
    assert "<img" not in html.split('id="content"')[1]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"model": "google-imagen"}, {"old"}),
        ({"status__exact": "failed"}, {"old"}),
        ({"project__id__exact": "first"}, {"new"}),
        ({"user__id__exact": "second"}, {"old"}),
        ({"q": "segment-new"}, {"new"}),
        ({"q": "lighthouse"}, {"old"}),
        ({"q": "watercolor"}, {"old"}),
        ({"created_at__year": "2020"}, {"old"}),
        ({}, {"new", "old"}),
    ],
)
def test_changelist_filters_search_and_date_hierarchy(admin_client, query, expected):
    new = GeneratedImageFactory(uuid="segment-new")
    old = GeneratedImageFactory(
        uuid="segment-old",
        visual_prompt="A lighthouse",
        art_style="watercolor",
        model="google-imagen",
        status=GeneratedImage.Status.FAILED,
    )
    GeneratedImage.objects.filter(pk=old.pk).update(created_at=timezone.now().replace(year=2020))
    ids = {"first": new.project_id, "second": old.user_id}
    params = {key: ids.get(value, value) for key, value in query.items()}

    response = admin_client.get(IMAGES, params)

    assert response.status_code == 200
    assert shown(response, [new, old]) == {f"segment-{name}" for name in expected}


# ---------------------------------------------------------------------------------------------
# One image: what it is, how it was routed, every provider call; prompt and style editable.
# ---------------------------------------------------------------------------------------------
def test_change_page_shows_the_image_its_routing_and_attempts(admin_client):
    image = stored_image(
        routing_category="realistic",
        routing_confidence=0.87,
        routing_signals=["art_style 'photography' -> realistic"],
        router_version="rules-9",
    )
    GenerationAttemptFactory(
        image=image,
        outcome="unavailable",
        http_status=503,
        detail="Recraft answered HTTP 503: overloaded",
        cost_usd=0,
    )
    GenerationAttemptFactory(image=image, vendor_request_id="rc-img-77")

    html = admin_client.get(change_url(image)).content.decode()

    assert f"/imagegen-test/{image.s3_key}?" in html
    for text in (
        "realistic",
        "0.87",
        "<li>art_style &#x27;photography&#x27; -&gt; realistic</li>",
        "rules-9",
        "Recraft answered HTTP 503: overloaded",
        "rc-img-77",
        "Unavailable",
        "Succeeded",
    ):
        assert text in html


def test_change_page_edits_prompt_and_style_through_the_service(admin_client, monkeypatch):
    image = stored_image()
    calls = []
    real_update = services.image_update
    monkeypatch.setattr(
        "imagegen.admin.services.image_update",
        lambda **kwargs: calls.append(kwargs) or real_update(**kwargs),
    )
    data = change_form_data(
        admin_client,
        change_url(image),
        art_style="  cinematic photography with soft lighting ",
        s3_key="images/elsewhere/evil.jpg",
        status="failed",
    )

    response = admin_client.post(change_url(image), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    image.refresh_from_db()
    assert image.art_style == "cinematic photography with soft lighting"
    assert image.s3_key.endswith(f"/{image.uuid}.jpg")  # storage fields are read-only
    assert image.status == "succeeded"
    assert calls == [{"image": image, "art_style": "cinematic photography with soft lighting"}]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("visual_prompt", "x" * 801, "no more than 800 characters"),
        ("visual_prompt", "", "This field is required."),
        ("visual_prompt", "a bell\x07 rings", "Must not contain control characters."),
        ("art_style", "y" * 181, "no more than 180 characters"),
    ],
)
def test_change_page_refuses_what_the_api_refuses(admin_client, field, value, error):
    image = stored_image()
    before = (image.visual_prompt, image.art_style, image.updated_at)

    response = admin_client.post(
        change_url(image), change_form_data(admin_client, change_url(image), **{field: value})
    )

    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors[field])
    image.refresh_from_db()
    assert (image.visual_prompt, image.art_style, image.updated_at) == before


@pytest.mark.parametrize(
    ("page", "owner"),
    [
        ("admin:imagegen_generatedimage_delete", "pk"),
        ("admin:projects_project_delete", "project_id"),
        ("admin:accounts_user_delete", "user_id"),
    ],
)
def test_deleting_an_image_or_its_owner_removes_the_stored_object(
    admin_client, django_capture_on_commit_callbacks, page, owner
):
    image = stored_image()
    url = reverse(page, args=(getattr(image, owner),))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not GeneratedImage.objects.exists()
    assert not default_storage.exists(image.s3_key)


def test_bulk_delete_removes_every_stored_object(admin_client, django_capture_on_commit_callbacks):
    images = [stored_image(), stored_image()]

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            IMAGES,
            {
                "action": "delete_selected",
                "_selected_action": [image.pk for image in images],
                "post": "yes",
            },
        )

    assert not GeneratedImage.objects.exists()
    assert not any(default_storage.exists(image.s3_key) for image in images)


# ---------------------------------------------------------------------------------------------
# Regenerate.
# ---------------------------------------------------------------------------------------------
def regenerate(client, images, **extra):
    return client.post(
        IMAGES,
        {"action": "regenerate_selected", "_selected_action": [i.pk for i in images], **extra},
        follow=True,
    )


def test_regenerate_makes_new_images_with_the_current_prompt(admin_client, vendors, no_sleep):
    succeeded = stored_image(cost_usd=Decimal("0.035"))
    failed = GeneratedImageFactory(
        project=succeeded.project,
        status=GeneratedImage.Status.FAILED,
        s3_key="",
        message="Every image provider failed",
    )
    old_bytes = default_storage.open(succeeded.s3_key).read()
    vendors.recraft(body=vendor_payloads.recraft_success(credits=40))

    response = regenerate(admin_client, [succeeded, failed])

    # Newest first, as the list shows them.
    assert messages_of(response) == [f"Regenerated 2 image(s): {failed.uuid}, {succeeded.uuid}."]
    assert vendors.calls("recraft") == 2
    for image in (succeeded, failed):
        image.refresh_from_db()
        assert image.status == "succeeded"
        assert image.message == "Image generated successfully"
        assert default_storage.exists(image.s3_key)
    assert succeeded.cost_usd == Decimal("0.075")  # the first image plus the new one
    assert default_storage.open(succeeded.s3_key).read() != old_bytes


def test_regenerate_reports_each_failure_and_keeps_the_previous_image(
    admin_client, vendors, no_sleep
):
    image = stored_image()
    vendors.recraft(503, b"upstream overloaded")
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE"))

    response = regenerate(admin_client, [image])

    [message] = messages_of(response)
    assert message.startswith(f"1 image(s) failed to regenerate: {image.uuid}: Every image")
    kept_key = image.s3_key
    image.refresh_from_db()
    assert image.status == "succeeded"
    assert image.s3_key == kept_key
    assert image.message.startswith("Regeneration failed (Every image provider failed")
    assert image.error_code == "providers_failed"
    assert image.attempts.count() == 6


def test_regenerate_reports_an_image_deleted_meanwhile_as_gone(admin_client, vendors, monkeypatch):
    image, other = stored_image(), stored_image()
    vendors.recraft()
    regenerate_image = services.image_regenerate

    def deleted_meanwhile(*, image):
        if image.pk == other.pk:
            GeneratedImage.objects.filter(pk=image.pk).delete()  # by someone else, just now
        return regenerate_image(image=image)

    monkeypatch.setattr(services, "image_regenerate", deleted_meanwhile)

    response = regenerate(admin_client, [image, other])

    assert f"{other.uuid}: Not found: it does not exist" in " ".join(messages_of(response))
    assert vendors.calls("recraft") == 1


def test_regenerate_reports_an_unexpected_error_and_keeps_the_previous_image(
    admin_client, vendors, monkeypatch
):
    image, other = stored_image(), stored_image()
    calls = []

    def crash_once(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("a bug") if len(calls) == 1 else ConnectionError("storage reset")

    monkeypatch.setattr(services, "call_providers", crash_once)

    response = regenerate(admin_client, [image, other])

    [message] = messages_of(response)
    assert message.startswith("2 image(s) failed to regenerate: ")
    assert "unexpected error (RuntimeError); it has been logged" in message
    for row, key in ((image, image.s3_key), (other, other.s3_key)):
        row.refresh_from_db()
        assert (row.status, row.s3_key) == ("succeeded", key)
        assert row.message == "Regeneration failed (an internal error); the previous image is kept."


def test_regenerate_skips_an_image_being_generated_and_does_the_rest(
    admin_client, vendors, no_sleep
):
    running = GeneratedImageFactory(status="running", started_at=timezone.now(), s3_key="")
    ready = stored_image()
    vendors.recraft()

    response = regenerate(admin_client, [running, ready])

    assert messages_of(response) == [
        f"Regenerated 1 image(s): {ready.uuid}.",
        f"1 image(s) failed to regenerate: {running.uuid}: An image for uuid "
        f"{running.uuid!r} is being generated right now; retry in a few seconds to get the "
        "result.",
    ]
    assert vendors.calls("recraft") == 1
    running.refresh_from_db()
    assert running.status == "running"


def test_regenerate_from_the_image_page_returns_to_it(admin_client, vendors, no_sleep):
    image = stored_image()
    vendors.recraft()

    response = regenerate(admin_client, [image], _changeform="1")

    assert response.redirect_chain[-1][0] == change_url(image)
    assert messages_of(response) == [f"Regenerated 1 image(s): {image.uuid}."]


def test_regenerate_refuses_too_many_at_once(admin_client, vendors):
    images = GeneratedImageFactory.create_batch(MAX_REGENERATE_AT_ONCE + 1)

    response = regenerate(admin_client, images)

    assert messages_of(response) == [
        f"Select at most {MAX_REGENERATE_AT_ONCE} images to regenerate at once; "
        "nothing was regenerated."
    ]
    assert vendors.calls("recraft") == vendors.calls("gemini") == 0


@pytest.mark.parametrize(
    ("action", "done"), [("regenerate_selected", "regenerated"), ("export_as_csv", "exported")]
)
def test_actions_say_so_when_the_selected_images_are_gone(admin_client, vendors, action, done):
    image = GeneratedImageFactory()
    image_id = image.pk
    image.delete()

    response = admin_client.post(
        IMAGES, {"action": action, "_selected_action": [image_id]}, follow=True
    )

    assert response["Content-Type"].startswith("text/html")
    assert messages_of(response) == [
        f"None of the selected images exists any more (deleted meanwhile?); nothing was {done}."
    ]
    assert vendors.calls("recraft") == vendors.calls("gemini") == 0


def test_regenerate_needs_the_change_permission(client, vendors):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_generatedimage"))
    client.force_login(staff)
    image = stored_image()

    response = regenerate(client, [image])

    assert messages_of(response) == ["No action selected."]
    assert vendors.calls("recraft") == 0


def test_image_regenerate_routes_the_edited_prompt_again(vendors, no_sleep):
    image = stored_image()
    services.image_update(image=image, art_style="watercolor painting")
    vendors.gemini()

    services.image_regenerate(image=image)

    image.refresh_from_db()
    assert image.routing_category == "artistic"
    assert image.model == "google-imagen"
    assert vendors.calls("recraft") == 0


def test_image_regenerate_runs_as_a_request_against_the_in_flight_cap(vendors, no_sleep, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 1
    image = stored_image()
    GeneratedImage.objects.filter(pk=image.pk).update(background=True)
    seen = []
    vendors.mock.add_callback(
        "POST",
        vendors.recraft_url,
        callback=lambda request: (
            seen.append(GeneratedImage.objects.filter(status="running", background=False).count())
            or (200, {}, json.dumps(vendor_payloads.recraft_success()))
        ),
    )

    services.image_regenerate(image=image)

    assert seen == [1]


def test_image_regenerate_refuses_a_running_image_without_calling_a_vendor(vendors):
    image = GeneratedImageFactory(status="running", started_at=timezone.now())

    with pytest.raises(GenerationInProgress):
        services.image_regenerate(image=image)

    assert vendors.calls("recraft") == 0


def test_image_regenerate_takes_over_a_dead_running_image(vendors, no_sleep, settings):
    lease = timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE + 1)
    image = GeneratedImageFactory(status="running", started_at=timezone.now() - lease)
    vendors.recraft()

    services.image_regenerate(image=image)

    image.refresh_from_db()
    assert image.status == "succeeded"


def test_image_regenerate_raises_and_records_a_provider_failure(vendors, no_sleep):
    image = GeneratedImageFactory(status="failed", s3_key="", error_code="providers_failed")
    vendors.recraft(401, b"401 request unauthorized")
    vendors.gemini(403, vendor_payloads.gemini_error(403, "PERMISSION_DENIED"))

    with pytest.raises(ProvidersFailed):
        services.image_regenerate(image=image)

    image.refresh_from_db()
    assert (image.status, image.error_code) == ("failed", "providers_failed")
    assert image.attempts.count() == 2


# ---------------------------------------------------------------------------------------------
# Export.
# ---------------------------------------------------------------------------------------------
def test_export_as_csv_writes_the_selected_rows(admin_client):
    chosen = GeneratedImageFactory(visual_prompt="A red kite, high up", cost_usd=Decimal("0.04"))
    GeneratedImageFactory()

    response = admin_client.post(
        IMAGES, {"action": "export_as_csv", "_selected_action": [chosen.pk]}
    )

    assert response["Content-Type"] == "text/csv"
    assert 'filename="images.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["id"] == chosen.pk
    assert rows[0]["visual_prompt"] == "A red kite, high up"
    assert rows[0]["owner"] == chosen.user.username
    assert rows[0]["project"] == chosen.project.name
    assert rows[0]["cost_usd"] == "0.040000"


@pytest.mark.parametrize("prompt", ['=HYPERLINK("http://x")', "+1+2", "-2", "@SUM(A1)"])
def test_export_neutralises_spreadsheet_formulas(admin_client, prompt):
    image = GeneratedImageFactory(visual_prompt=prompt)

    response = admin_client.post(
        IMAGES, {"action": "export_as_csv", "_selected_action": [image.pk]}
    )

    [row] = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["visual_prompt"] == f"'{prompt}"


# ---------------------------------------------------------------------------------------------
# Projects and users.
# ---------------------------------------------------------------------------------------------
def test_project_page_lists_its_images_with_thumbnails_and_total_cost(admin_client):
    project = ProjectFactory()
    images = [
        stored_image(project=project, cost_usd=Decimal("0.035")),
        stored_image(project=project, cost_usd=Decimal("0.039")),
    ]
    GeneratedImageFactory(cost_usd=Decimal("5"))  # another project's

    html = admin_client.get(
        reverse("admin:projects_project_change", args=(project.pk,))
    ).content.decode()

    for image in images:
        assert f"/imagegen-test/{image.s3_key}?" in html
        assert change_url(image) in html
    assert "0.074000" in html
    assert f"{IMAGES}?project__id__exact={project.pk}" in html


def test_a_project_with_many_images_shows_the_newest_and_can_be_renamed(admin_client, settings):
    project = ProjectFactory()
    images = GeneratedImageFactory.create_batch(40, project=project)
    # Each inline row posts two hidden fields: 40 rows would be over this limit.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 60
    url = reverse("admin:projects_project_change", args=(project.pk,))
    html = admin_client.get(url).content.decode()

    response = admin_client.post(url, change_form_data(admin_client, url, name="Renamed"))

    newest = sorted(images, key=lambda image: (image.created_at, image.pk), reverse=True)
    assert all(change_url(image) in html for image in newest[:20])
    assert not any(change_url(image) in html for image in newest[20:])
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Renamed"


def test_project_list_shows_image_count_and_total_cost(admin_client):
    project = ProjectFactory(name="Water bottle ad")
    GeneratedImageFactory.create_batch(3, project=project, cost_usd=Decimal("0.01"))

    response = admin_client.get(PROJECTS)

    project_row = response.context["cl"].result_list.get(pk=project.pk)
    assert (project_row.image_count, project_row.total_cost_usd) == (3, Decimal("0.03"))
    assert "0.030000" in response.content.decode()


def test_staff_create_a_project_for_a_user(admin_client, user):
    url = reverse("admin:projects_project_add")

    response = admin_client.post(
        url, change_form_data(admin_client, url, name="Launch video", owner=user.pk)
    )

    assert response.status_code == 302
    assert user.projects.get().name == "Launch video"


@pytest.mark.parametrize("name", ["evil\x1b[31mred\x07", "a\x85b", "  "])
def test_a_project_name_the_api_refuses_is_refused_here_too(admin_client, project, name):
    add, change = (
        reverse("admin:projects_project_add"),
        reverse("admin:projects_project_change", args=(project.pk,)),
    )

    added = admin_client.post(
        add, change_form_data(admin_client, add, name=name, owner=project.owner_id)
    )
    renamed = admin_client.post(change, change_form_data(admin_client, change, name=name))

    assert (added.status_code, renamed.status_code) == (200, 200)  # the form again, with errors
    assert added.context["adminform"].form.errors["name"]
    assert [p.name for p in Project.objects.all()] == [project.name]


def test_user_page_lists_their_projects(admin_client, project):
    html = admin_client.get(
        reverse("admin:accounts_user_change", args=(project.owner_id,))
    ).content.decode()

    assert project.name in html
    assert reverse("admin:projects_project_change", args=(project.pk,)) in html
