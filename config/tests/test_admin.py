"""Admin changelists answer impossible query parameters with the admin's "invalid lookup"
redirect, never a 500, and apply every filter they are given."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from imagegen.tests.factories import GeneratedImageFactory
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

IMAGES, PROJECTS, USERS = (
    "/admin/imagegen/generatedimage/",
    "/admin/projects/project/",
    "/admin/accounts/user/",
)


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        (IMAGES, "uuid__regex=(a"),  # PostgreSQL: invalid regular expression
        (IMAGES, "visual_prompt__iregex=["),
        (IMAGES, "art_style__regex=a%7B99999%7D"),
        (IMAGES, "id__range=a"),  # a range of one value
        (IMAGES, "created_at__year=9999"),  # the date hierarchy's next year is 10000
        (IMAGES, "created_at__year=9999&created_at__month=12"),
        (IMAGES, "user__id__exact=abc"),  # not a user id: the filter's own lookup fails
        (PROJECTS, "owner__id__exact=abc"),
        (PROJECTS, "name__regex=("),
        (PROJECTS, "created_at__year=9999&created_at__month=12&created_at__day=31"),
        (USERS, "username__regex=("),
    ],
)
def test_an_impossible_lookup_is_the_invalid_lookup_redirect(admin_client, changelist, query):
    GeneratedImageFactory()

    response = admin_client.get(f"{changelist}?{query}")

    assert (response.status_code, response["Location"]) == (302, f"{changelist}?e=1")
    assert admin_client.get(response["Location"]).status_code == 200


def test_good_lookups_still_filter(admin_client):
    kept, _ = GeneratedImageFactory(uuid="keep-me"), GeneratedImageFactory(uuid="not-me")

    response = admin_client.get(f"{IMAGES}?uuid__regex=^keep")

    assert response.status_code == 200
    assert [image.pk for image in response.context["cl"].result_list] == [kept.pk]


def test_a_related_filter_with_one_choice_still_filters(admin_client):
    """Django hides a related filter with a single choice; its parameter must still apply."""
    image = GeneratedImageFactory()
    empty = ProjectFactory()
    idle = UserFactory()

    def listed(changelist: str, query: str) -> list[str]:
        response = admin_client.get(f"{changelist}?{query}")
        assert response.status_code == 200
        return [row.pk for row in response.context["cl"].result_list]

    assert listed(IMAGES, f"project__id__exact={empty.pk}") == []
    assert listed(IMAGES, f"user__id__exact={idle.pk}") == []
    assert listed(IMAGES, f"project__id__exact={image.project_id}") == [image.pk]
    assert listed(PROJECTS, f"owner__id__exact={idle.pk}") == []
    assert listed(PROJECTS, f"owner__id__exact={empty.owner_id}") == [empty.pk]


def test_the_filter_shows_the_related_object_it_filters_by(admin_client):
    GeneratedImageFactory()
    empty = ProjectFactory(name="The empty one")

    response = admin_client.get(f"{IMAGES}?project__id__exact={empty.pk}")

    changelist = response.context["cl"]
    [spec] = [spec for spec in changelist.filter_specs if spec.field_path == "project"]
    selected = [choice["display"] for choice in spec.choices(changelist) if choice["selected"]]
    assert selected == ["The empty one"]
