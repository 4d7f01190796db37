"""The projects API: create, list, rename, delete, and bad input on each."""

from __future__ import annotations

import pytest

from projects.models import Project

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
