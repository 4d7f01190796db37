"""`GET /image-gen` stays a JSON array but is bounded: `limit`, opaque `cursor`, `Link` header."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from imagegen.models import GeneratedImage, ImageBatch
from imagegen.serializers import ImageSerializer, ImageWithProjectSerializer
from imagegen.tests.factories import GeneratedImageFactory
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

NEXT_LINK = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


def make_images(project, count: int, *, tied: int = 0) -> list[str]:
    """`count` images, newest first by id list; the `tied` newest share one `created_at`."""
    images = GeneratedImageFactory.build_batch(count, project=project, user=project.owner)
    GeneratedImage.objects.bulk_create(images)
    start = timezone.now() - timedelta(days=1)
    for offset, image in enumerate(images):
        image.created_at = start + timedelta(seconds=min(offset, count - tied))
    GeneratedImage.objects.bulk_update(images, ["created_at"])
    newest_first = sorted(images, key=lambda image: (image.created_at, image.id), reverse=True)
    return [image.id for image in newest_first]


def next_url(response) -> str | None:
    match = NEXT_LINK.search(response.get("Link", ""))
    return match.group("url") if match else None


def page_through(api, url: str) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.json()
        assert isinstance(response.json(), list)
        ids += [item["id"] for item in response.json()]
        pages += 1
        url = next_url(response)
    return ids, pages


def test_paging_through_250_images_yields_each_once_in_order(api, project):
    # 40 images share one timestamp, across the boundary of the first and second pages.
    expected = make_images(project, 250, tied=40)

    ids, pages = page_through(api, f"/image-gen?projectId={project.id}&limit=100")

    assert ids == expected
    assert pages == 3


def test_the_default_page_is_the_configured_limit(api, project, settings):
    settings.IMAGEGEN_LIST_DEFAULT_LIMIT = 7
    make_images(project, 10)

    response = api.get("/image-gen")

    assert len(response.json()) == 7
    assert next_url(response) is not None


def test_a_limit_over_the_maximum_is_capped(api, project, settings):
    settings.IMAGEGEN_LIST_MAX_LIMIT = 5
    make_images(project, 8)

    response = api.get("/image-gen", {"limit": 1000})

    assert response.status_code == 200
    assert len(response.json()) == 5


def test_the_last_page_has_no_next_link(api, project):
    make_images(project, 3)

    response = api.get("/image-gen", {"limit": 3})

    assert len(response.json()) == 3
    assert next_url(response) is None


def test_the_next_link_keeps_the_project_filter(api, user, project):
    make_images(project, 4)
    make_images(ProjectFactory(owner=user), 4)

    ids, _ = page_through(api, f"/image-gen?projectId={project.id}&limit=2")

    assert set(GeneratedImage.objects.filter(pk__in=ids).values_list("project", flat=True)) == {
        project.id
    }
    assert len(ids) == 4


def test_pages_hold_only_the_callers_images(api, project, other_project):
    mine = make_images(project, 3)
    make_images(other_project, 3)

    ids, _ = page_through(api, "/image-gen?limit=2")

    assert ids == mine


def encoded(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "%%%",
        encoded("o=-1"),
        encoded("r=yes"),
        encoded("p=not-a-date"),
        encoded("p=2025-13-45 99:99:99"),
    ],
)
def test_a_bad_cursor_is_a_400_in_the_error_shape(api, project, cursor):
    make_images(project, 2)

    response = api.get("/image-gen", {"cursor": cursor})

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["message"].startswith("Invalid input: cursor: Invalid cursor")


@pytest.mark.parametrize(
    "limit", ["0", "-3", "ten", "1.5", "", " 5", "+5", "1_0", "\uff15", "9" * 5000]
)
def test_a_bad_limit_is_a_400_in_the_error_shape(api, limit, settings):
    settings.IMAGEGEN_LIST_MAX_LIMIT = 500

    response = api.get("/image-gen", {"limit": limit})

    assert response.status_code == 400
    assert response.json() | {"errors": None} == {
        "success": False,
        "code": "invalid",
        "message": "Invalid input: limit: Must be a whole number from 1 to 500.",
        "errors": None,
    }


@pytest.mark.parametrize("name", ["projectId", "id"])
def test_a_filter_sent_empty_is_a_400_not_every_image(api, project, name):
    make_images(project, 2)

    response = api.get("/image-gen", {name: ""})

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"Invalid input: {name}: Must not be empty; leave {name} out to list all images."
    )


@pytest.mark.parametrize("name", ["projectid", "project_id", "ids", "page", "format", ""])
def test_an_unknown_query_parameter_is_a_400_not_every_image(api, project, name):
    make_images(project, 2)

    response = api.get("/image-gen", {name: project.id})

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"Invalid input: {name or '(no name)'}: Unknown query parameter; this list takes id, "
        "projectId, limit and cursor."
    )


@pytest.mark.parametrize("name", ["projectId", "limit"])
def test_a_query_parameter_given_twice_is_a_400(api, project, other_project, name):
    make_images(project, 2)
    values = {"projectId": [project.id, other_project.id], "limit": ["1", "2"]}[name]

    response = api.get("/image-gen", {name: values})

    assert response.status_code == 400
    assert response.json()["message"] == f"Invalid input: {name}: Given 2 times; give it once."


@pytest.mark.parametrize("name", ["projectId", "id"])
@pytest.mark.parametrize("padding", [" {}", "{}\n", "  "])
def test_a_filter_is_taken_exactly_as_sent(api, project, name, padding):
    image_id = make_images(project, 1)[0]
    value = padding.format(project.id if name == "projectId" else image_id)

    response = api.get("/image-gen", {name: value})

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"Invalid input: {name}: Must be an id exactly as given, without spaces around it."
    )


@pytest.mark.parametrize(("query", "queries"), [({}, 2), ({"projectId": True}, 3)])
@pytest.mark.parametrize("rows", [5, 50])
def test_a_page_costs_the_same_queries_whatever_its_size(
    api, project, django_assert_num_queries, rows, query, queries
):
    make_images(project, rows)
    params = {"limit": 100, **({"projectId": project.id} if query else {})}

    with django_assert_num_queries(queries):
        response = api.get("/image-gen", params)

    assert len(response.json()) == rows


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"status": "pending", "s3_key": "", "image_size_bytes": None, "width": None, "message": ""},
        {"status": "failed", "message": "Every image provider failed", "cost_usd": "0.0105"},
        {"routing_signals": ["watercolor", "painting"], "routing_confidence": None},
    ],
)
@pytest.mark.parametrize("serializer_class", [ImageSerializer, ImageWithProjectSerializer])
def test_the_record_shape_is_what_drf_would_build_from_the_declared_fields(
    project, rf, fields, serializer_class
):
    batch = ImageBatch.objects.create(user=project.owner, project=project)
    image = GeneratedImageFactory(project=project, batch=batch, **fields)
    image.refresh_from_db()
    serializer = serializer_class(image, context={"request": rf.get("/image-gen")})

    generic = serializers.ModelSerializer.to_representation(serializer, image)

    assert json.loads(JSONRenderer().render(serializer.data)) == json.loads(
        JSONRenderer().render(generic)
    )
    assert list(serializer.data) == list(generic)


@pytest.fixture
def presigned(monkeypatch) -> list[str]:
    """The keys the storage is asked to sign a URL for."""
    keys: list[str] = []
    storage = storages["default"]
    sign = storage.url
    monkeypatch.setattr(storage, "url", lambda key: keys.append(key) or sign(key))
    return keys


def test_a_list_signs_each_image_url_once_and_reuses_it(api, project, presigned):
    make_images(project, 3)

    first = api.get("/image-gen").json()
    second = api.get("/image-gen").json()

    assert len(presigned) == 3
    assert [item["imageUrl"] for item in first] == [item["imageUrl"] for item in second]
    assert all("Signature=" in item["imageUrl"] for item in first)


def test_image_urls_are_signed_anew_after_half_their_lifetime(api, project, presigned, settings):
    settings.AWS_QUERYSTRING_EXPIRE = 0
    make_images(project, 3)

    api.get("/image-gen")
    api.get("/image-gen")

    assert len(presigned) == 6
