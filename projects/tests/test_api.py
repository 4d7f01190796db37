"""The projects API: create, list (paged), rename, delete, and bad input on each."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from imagegen.tests.factories import GeneratedImageFactory
from projects import services
from projects.models import Project
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_create_answers_201_with_the_project(api, user):
    response = api.post("/projects", {"name": "Launch video"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Launch video"
    assert body["imageCount"] == 0
    assert Project.objects.get(pk=body["id"]).owner == user


def test_rename_changes_only_the_name(api, project):
    response = api.patch(f"/projects/{project.id}", {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    project.refresh_from_db()
    assert project.name == "Renamed"


def test_rename_of_a_project_deleted_meanwhile_is_a_404(api, project, monkeypatch):
    rename = services.project_rename

    def deleted_meanwhile(**arguments):
        Project.objects.filter(pk=project.pk).delete()  # a DELETE landed first
        return rename(**arguments)

    monkeypatch.setattr(services, "project_rename", deleted_meanwhile)

    response = api.patch(f"/projects/{project.id}", {"name": "Renamed"}, format="json")

    assert response.status_code == 404, response.json()
    assert response.json()["code"] == "not_found"
    assert not Project.objects.exists()


@pytest.mark.parametrize("body", [{}, {"id": "other"}, {"createdAt": "2020-01-01T00:00:00Z"}])
def test_patch_without_a_name_is_a_400_that_changes_nothing(api, project, body):
    response = api.patch(f"/projects/{project.id}", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["This field is required."]}
    assert Project.objects.get(pk=project.id).name == project.name


def test_delete_removes_the_project(api, project):
    response = api.delete(f"/projects/{project.id}")

    assert response.status_code == 204
    assert not Project.objects.filter(pk=project.id).exists()


def test_the_list_is_paged_newest_first_with_the_next_page_in_a_link_header(api, user):
    created = [ProjectFactory(owner=user).id for _ in range(5)]
    ProjectFactory()  # someone else's

    seen, url = [], "/projects?limit=2"
    while url:
        response = api.get(url)
        assert response.status_code == 200
        assert len(response.json()) <= 2
        seen += [project["id"] for project in response.json()]
        match = re.search(r'<([^>]+)>; rel="next"', response.get("Link", ""))
        url = match.group(1) if match else None

    assert seen == created[::-1]


def test_the_list_is_bounded_by_the_configured_limit(api, user, settings):
    settings.IMAGEGEN_LIST_DEFAULT_LIMIT = 3
    for _ in range(4):
        ProjectFactory(owner=user)

    response = api.get("/projects")

    assert len(response.json()) == 3
    assert 'rel="next"' in response["Link"]


@pytest.mark.parametrize("query", ["?name=Launch", "?limit=1&limit=2", "?page=2"])
def test_list_parameters_it_does_not_take_are_a_400(api, project, query):
    response = api.get(f"/projects{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_the_list_adds_up_each_projects_images_in_a_constant_number_of_queries(
    api, user, django_assert_max_num_queries
):
    empty, busy = ProjectFactory(owner=user), ProjectFactory(owner=user)
    for cost in ("0.035", "0.04"):
        GeneratedImageFactory(project=busy, user=user, cost_usd=Decimal(cost))
    GeneratedImageFactory(cost_usd=Decimal(5))  # another user's
    for _ in range(20):
        ProjectFactory(owner=user)

    with django_assert_max_num_queries(4):
        listed = api.get("/projects?limit=25").json()

    totals = {project["id"]: (project["imageCount"], project["totalCostUsd"]) for project in listed}
    assert totals[empty.id] == (0, 0)
    assert totals[busy.id] == (2, pytest.approx(0.075))


def test_a_format_parameter_is_no_404_on_one_project(api, project):
    response = api.get(f"/projects/{project.id}?format=xml")

    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
