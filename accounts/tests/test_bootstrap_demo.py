"""`manage.py bootstrap_demo`: makes and resets its own demo account, never anyone else's."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory
from projects.models import Project

pytestmark = pytest.mark.django_db


def bootstrap(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", *args, stdout=out)
    return out.getvalue()


def password_in(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if "password:" in line)


def test_it_makes_a_demo_account_and_resets_only_its_password_on_a_second_run():
    first = bootstrap()
    second = bootstrap()

    user = User.objects.get(username="demo")
    assert password_in(first) != password_in(second)
    assert user.check_password(password_in(second))
    assert Project.objects.filter(owner=user).count() == 1


def test_a_second_project_of_the_demo_name_is_no_obstacle():
    first = bootstrap()
    user = User.objects.get(username="demo")
    Project.objects.create(owner=user, name="Demo video project")  # the demo user made another

    again = bootstrap()

    user.refresh_from_db()
    assert user.check_password(password_in(again))
    assert project_id_in(again) == project_id_in(first)


def project_id_in(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if "project id:" in line)


@pytest.mark.parametrize("staff", [False, True])
def test_it_does_not_take_over_an_existing_account(staff):
    user = UserFactory(username="root", is_staff=staff, is_superuser=staff)

    with pytest.raises(CommandError, match="existing account that bootstrap_demo did not make"):
        bootstrap("--username", "root")

    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not Project.objects.filter(owner=user).exists()


@pytest.mark.parametrize("username", ["", "bad\x1bname", "u" * 151, "has space"])
def test_a_username_the_user_model_refuses_is_a_command_error(username):
    with pytest.raises(CommandError, match="--username"):
        bootstrap("--username", username)

    assert not User.objects.exists()


def test_it_does_not_take_over_an_account_that_named_a_project_like_its_own():
    user = UserFactory(username="alice")
    Project.objects.create(owner=user, name="Demo video project")

    with pytest.raises(CommandError, match="existing account that bootstrap_demo did not make"):
        bootstrap("--username", "alice")

    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_the_migration_marks_the_demo_account_made_before_the_mark():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    old = executor.loader.project_state(
        [("accounts", "0001_initial"), ("projects", "0001_initial")]
    ).apps
    for username in ("demo", "alice"):
        owner = old.get_model("accounts", "User").objects.create(username=username)
        old.get_model("projects", "Project").objects.create(owner=owner, name="Demo video project")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert set(User.objects.filter(is_demo=True).values_list("username", flat=True)) == {"demo"}
    assert "Demo account ready" in bootstrap()
