"""Two users, every endpoint and method: nobody reaches another user's projects or images."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from conftest import S3_BUCKET
from imagegen.models import GeneratedImage
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST
from projects.models import Project
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned_image(project, s3_client):
    """The first user's image, with its object in the bucket."""
    image = GeneratedImageFactory(project=project)
    s3_client.put_object(Bucket=S3_BUCKET, Key=image.s3_key, Body=b"jpeg bytes")
    return image


def everything() -> tuple[list[dict], list[dict]]:
    """Every project and image row as stored, to prove a refused request wrote nothing."""
    return (
        list(Project.objects.order_by("pk").values()),
        list(GeneratedImage.objects.order_by("pk").values()),
    )


# (method, path, body): `{project}` and `{image}` are the first user's.
FOREIGN_REQUESTS = [
    ("get", "/projects/{project}", None),
    ("patch", "/projects/{project}", {"name": "taken over"}),
    ("delete", "/projects/{project}", None),
    ("get", "/image-gen?projectId={project}", None),
    ("get", "/image-gen?id={image}", None),
    ("post", "/image-gen", {**SEED_POST, "uuid": "intruder", "projectId": "{project}"}),
    ("post", "/image-gen", {**SEED_POST, "projectId": "{project}"}),  # the owner's own uuid
    ("get", "/image-gen/{image}", None),
    ("patch", "/image-gen/{image}", {"visual_prompt": "taken over"}),
    ("patch", "/image-gen/{image}", {"s3_key": "{key}"}),
    ("delete", "/image-gen/{image}", None),
]


def fill(template, *, image: GeneratedImage):
    names = {"project": image.project_id, "image": image.id, "key": image.s3_key}
    if isinstance(template, dict):
        return {field: fill(value, image=image) for field, value in template.items()}
    return template.format(**names) if isinstance(template, str) else template


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_REQUESTS)
def test_another_users_project_or_image_is_a_404_that_changes_nothing(
    other_api, other_user, owned_image, vendors, method, path, body
):
    ProjectFactory(owner=other_user)  # the intruder has data of their own
    before = everything()

    response = getattr(other_api, method)(
        fill(path, image=owned_image), fill(body, image=owned_image), format="json"
    )

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert "not found" in response.json()["message"].lower()
    assert everything() == before
    assert default_storage.exists(owned_image.s3_key)
    assert len(vendors.mock.calls) == 0


@pytest.mark.parametrize("path", ["/projects", "/image-gen"])
def test_lists_hold_only_the_callers_own_records(other_api, other_user, owned_image, path):
    own_project = ProjectFactory(owner=other_user)
    own_image = GeneratedImageFactory(project=own_project)
    own_record = own_project.id if path == "/projects" else own_image.id

    response = other_api.get(path)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [own_record]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/projects/{project}"),
        ("patch", "/projects/{project}"),
        ("delete", "/projects/{project}"),
        ("get", "/image-gen/{image}"),
        ("patch", "/image-gen/{image}"),
        ("delete", "/image-gen/{image}"),
    ],
)
def test_anonymous_requests_on_records_are_401(anonymous, owned_image, method, path):
    before = everything()

    response = getattr(anonymous, method)(fill(path, image=owned_image), {}, format="json")

    assert response.status_code == 401
    assert response.json()["success"] is False
    assert everything() == before


def test_owner_fields_of_a_new_project_are_ignored(other_api, other_user, user):
    response = other_api.post(
        "/projects",
        {"name": "Mine", "owner": user.pk, "userId": str(user.pk), "id": "chosen"},
        format="json",
    )

    assert response.status_code == 201
    project = Project.objects.get(pk=response.json()["id"])
    assert project.owner == other_user
    assert project.id != "chosen"
    assert response.json()["userId"] == str(other_user.pk)


def test_project_rename_cannot_change_its_owner_or_id(api, user, other_user, project):
    response = api.patch(
        f"/projects/{project.id}",
        {"name": "Renamed", "owner": other_user.pk, "userId": str(other_user.pk), "id": "x1"},
        format="json",
    )

    assert response.status_code == 200
    assert Project.objects.values_list("id", "owner", "name").get() == (
        project.id,
        user.pk,
        "Renamed",
    )


def test_same_uuid_as_another_users_image_is_a_new_image_of_ones_own(
    other_api, other_user, owned_image, vendors
):
    vendors.recraft()
    own_project = ProjectFactory(owner=other_user)

    response = other_api.post(
        "/image-gen",
        {**SEED_POST, "uuid": owned_image.uuid, "projectId": own_project.id},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["id"] != owned_image.id
    assert response.json()["s3_key"] == f"images/{own_project.id}/{owned_image.uuid}.jpg"
    assert GeneratedImage.objects.get(pk=owned_image.pk).s3_key == owned_image.s3_key


def test_patch_cannot_point_an_image_at_another_users_object(other_api, other_user, owned_image):
    own_image = GeneratedImageFactory(project=ProjectFactory(owner=other_user))

    response = other_api.patch(
        f"/image-gen/{own_image.id}", {"s3_key": owned_image.s3_key}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_s3_key"
    own_image.refresh_from_db()
    assert own_image.s3_key != owned_image.s3_key


READ_ONLY_IMAGE_FIELDS = {
    "id": "cforged000000000000000000",
    "model": "forged-model",
    "success": False,
    "status": "failed",
    "userId": "1",
    "user": 1,
    "projectId": "cforged000000000000000000",
    "project": "cforged000000000000000000",
    "imageSizeBytes": 1,
    "image_size_bytes": 1,
    "width": 1,
    "height": 1,
    "costUsd": 999,
    "cost_usd": 999,
    "providerModel": "forged",
    "uuid": "forged-uuid",
}


def test_patch_never_applies_read_only_fields(api, project, other_user):
    image = GeneratedImageFactory(project=project)
    forged = {**READ_ONLY_IMAGE_FIELDS, "userId": str(other_user.pk), "user": other_user.pk}
    before = GeneratedImage.objects.values().get()

    response = api.patch(
        f"/image-gen/{image.id}", {**forged, "visual_prompt": "A new scene"}, format="json"
    )

    assert response.status_code == 200
    after = GeneratedImage.objects.values().get()
    changed = {field for field in after if after[field] != before[field]}
    assert changed == {"visual_prompt", "updated_at"}


def test_patch_of_read_only_fields_alone_is_a_400(api, project):
    image = GeneratedImageFactory(project=project)
    before = GeneratedImage.objects.values().get()

    response = api.patch(f"/image-gen/{image.id}", READ_ONLY_IMAGE_FIELDS, format="json")

    assert response.status_code == 400
    assert "at least one of" in response.json()["message"]
    assert GeneratedImage.objects.values().get() == before
