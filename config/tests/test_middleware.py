"""Requests refused before any view: a NUL byte anywhere in a URL or a posted form (400), too
many query parameters or form fields (400), a chunked body without a length (411); in the error
shape, for the API and the admin alike."""

from __future__ import annotations

import pytest

from imagegen.tests.factories import GeneratedImageFactory

pytestmark = pytest.mark.django_db

ADMIN_URLS = [
    "/admin/imagegen/generatedimage/?status=%00",
    "/admin/imagegen/generatedimage/?q=a%00b",
    "/admin/imagegen/generatedimage/%00/change/",
    "/admin/projects/project/?q=%00",
    "/admin/accounts/user/%00/change/",
]


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_urls_with_a_nul_byte_are_a_400(admin_client, url):
    response = admin_client.get(url)

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "Malformed request.",
        "code": "bad_request",
    }


@pytest.mark.parametrize(
    ("url", "form"),
    [
        ("/admin/imagegen/generatedimage/", {"action": "export_as_csv"}),
        ("/admin/imagegen/generatedimage/", {"action": "regenerate_selected"}),
        ("/admin/imagegen/generatedimage/", {"action": "delete_selected"}),
        ("/admin/imagegen/generatedimage/", {"action": "delete_selected", "post": "yes"}),
        ("/admin/projects/project/", {"action": "delete_selected"}),
    ],
)
def test_admin_actions_with_a_nul_byte_are_a_400_and_change_nothing(
    admin_client, caplog, url, form
):
    image = GeneratedImageFactory()

    response = admin_client.post(url, {**form, "_selected_action": ["\x00", image.pk]})

    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert [record.getMessage() for record in caplog.records] == [f"nul_byte_in_form path={url!r}"]
    image.refresh_from_db()


def test_a_nul_byte_in_a_form_field_name_is_a_400(admin_client):
    response = admin_client.post("/admin/imagegen/generatedimage/", {"a\x00": "1"})

    assert response.status_code == 400


@pytest.mark.parametrize("debug", [False, True])
def test_the_refusal_is_json_and_a_warning_also_with_debug_on(api, settings, caplog, debug):
    settings.DEBUG = debug

    response = api.get("/image-gen?id=a%00b")

    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "nul_byte_in_url path='/image-gen'")
    ]


@pytest.mark.parametrize("debug", [False, True])
def test_too_many_query_parameters_is_a_400_that_says_so(api, settings, caplog, debug):
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    query = "&".join(f"a{index}=1" for index in range(6))

    response = api.get(f"/image-gen?{query}")

    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json() == {
        "success": False,
        "message": "Too many query parameters or form fields: at most 5 are read.",
        "code": "too_many_fields",
    }
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "too_many_fields path='/image-gen'")
    ]


def test_too_many_form_fields_is_a_400_that_changes_nothing(admin_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    image = GeneratedImageFactory()
    form = {"action": "delete_selected", "post": "yes", "_selected_action": [image.pk] * 5}

    response = admin_client.post("/admin/imagegen/generatedimage/", form)

    assert (response.status_code, response.json()["code"]) == (400, "too_many_fields")
    image.refresh_from_db()


@pytest.mark.parametrize(
    "url", ["/image-gen?id=a%00b", "/image-gen?cursor=%00", "/image-gen?a%00=1", "/projects%00"]
)
def test_api_urls_with_a_nul_byte_are_a_400(api, url):
    assert api.get(url).status_code == 400


def test_urls_without_one_are_served(admin_client, api, project):
    image = GeneratedImageFactory(project=project)

    assert admin_client.get(f"/admin/imagegen/generatedimage/{image.pk}/change/").status_code == 200
    assert api.get("/image-gen", {"id": image.pk}).status_code == 200


@pytest.mark.parametrize("method", ["post", "patch", "put"])
def test_a_chunked_body_without_a_length_is_a_411_that_changes_nothing(api, project, method):
    response = getattr(api, method)(
        f"/projects/{project.id}",
        b'{"name": "Renamed"}',
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        CONTENT_LENGTH="",  # as a chunked request arrives: no length
    )

    assert response.status_code == 411
    assert response.json() == {
        "success": False,
        "message": "Send the body with a Content-Length header; chunked request bodies are not "
        "supported.",
        "code": "length_required",
    }
    project.refresh_from_db()
    assert project.name != "Renamed"


def test_a_body_with_its_length_is_served_whatever_transfer_encoding_says(api, project):
    response = api.patch(
        f"/projects/{project.id}",
        {"name": "Renamed"},
        format="json",
        headers={"Transfer-Encoding": "chunked"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["get", "head", "options", "delete"])
def test_a_request_without_a_body_is_served_whatever_transfer_encoding_says(api, project, method):
    response = getattr(api, method)(
        f"/projects/{project.id}", headers={"Transfer-Encoding": "chunked"}, CONTENT_LENGTH=""
    )

    assert response.status_code in (200, 204)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_form_over_the_upload_limit_gets_the_views_own_answer(api, settings, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = api.generic("POST", "/image-gen", "a=" + "x" * 2048, content_type=content_type)

    assert response.status_code == 415
