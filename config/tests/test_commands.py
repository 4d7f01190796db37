"""What every project command shares: one line, not a traceback, when the database is down."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

pytestmark = pytest.mark.django_db

# The database commands: each reaches the database early, before any vendor or storage.
DATABASE_COMMANDS = [
    ("imagegen_sweep",),
    ("imagegen_stats",),
    ("imagegen_reconcile",),
    ("generate_image", "--project", "c0mww0z6el3g6y5pi9grmkqn6", "--prompt", "A desk"),
    ("generate_batch", "board.csv", "--project", "c0mww0z6el3g6y5pi9grmkqn6"),
    ("bootstrap_demo",),
]


@pytest.fixture
def default_database() -> Iterator[Callable[[BaseDatabaseWrapper], None]]:
    """Replaces the default connection for the test (the test's own comes back after it)."""
    test_connection = connections["default"]
    yield lambda replacement: connections.__setitem__("default", replacement)
    connections["default"] = test_connection


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["pool", "no pool"])
def unreachable_database(request, default_database) -> Iterator[int]:
    """The default connection points at a closed port (with a short pool wait, or no pool), with
    a password that must never be shown."""
    port = closed_port()
    options = {"pool": {"min_size": 1, "timeout": 0.3}} if request.param == "pool" else {}
    settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PASSWORD": "not-to-be-shown",
        "OPTIONS": options,
    }
    unreachable = type(connections["default"])(settings_dict, alias="unreachable")
    default_database(unreachable)
    yield port
    if options:
        unreachable.close_pool()


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=lambda command: command[0])
def test_a_database_that_cannot_be_reached_is_one_line_naming_it(
    unreachable_database, command, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.csv").write_text("visual_prompt,art_style,uuid\nA desk,photo,seg-1\n")

    with pytest.raises(CommandError) as failure:
        call_command(*command, stdout=io.StringIO())

    message = str(failure.value)
    assert message.startswith(
        f"Cannot connect to PostgreSQL database '{connection.settings_dict['NAME']}' at "
        f"127.0.0.1:{unreachable_database} ("
    )
    assert message.endswith("and that DATABASE_URL points to it.")
    assert "\n" not in message
    assert "not-to-be-shown" not in message


def test_a_pool_that_cannot_connect_is_not_waited_for(default_database, caplog):
    port = closed_port()
    settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPTIONS": {"pool": {"min_size": 1, "timeout": 30}},
    }
    unreachable = type(connections["default"])(settings_dict, alias="unreachable")
    default_database(unreachable)
    started = time.monotonic()

    with pytest.raises(CommandError, match="Connection refused"):
        call_command("imagegen_sweep", stdout=io.StringIO())

    assert time.monotonic() - started < 5
    assert not [record for record in caplog.records if record.name.startswith("psycopg")]
    assert "unreachable" not in unreachable._connection_pools  # the pool was never opened


def test_a_command_that_needs_no_database_runs_without_one(unreachable_database):
    out = io.StringIO()

    call_command("imagegen_providers", stdout=out)

    assert "providers usable" in out.getvalue()


def test_a_sqlite_file_that_cannot_be_opened_is_named(tmp_path, default_database):
    path = tmp_path / "no-such-folder" / "db.sqlite3"
    default_database(
        SQLiteWrapper({**connection.settings_dict, "NAME": str(path), "OPTIONS": {}}, "missing")
    )

    with pytest.raises(CommandError) as failure:
        call_command("imagegen_sweep", stdout=io.StringIO())

    assert str(failure.value).startswith(
        f"Cannot connect to the SQLite file {path} (unable to open database file)."
    )


def test_other_database_errors_are_not_called_a_connection_failure(monkeypatch):
    def sweep():
        raise OperationalError("deadlock detected")

    monkeypatch.setattr("imagegen.management.commands.imagegen_sweep.images_sweep_stale", sweep)

    with pytest.raises(OperationalError, match="deadlock detected"):
        call_command("imagegen_sweep", stdout=io.StringIO())


def test_a_cache_that_cannot_be_reached_is_one_line_naming_it(settings):
    port = closed_port()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://:not-to-be-shown@127.0.0.1:{port}/1",
        }
    }

    with pytest.raises(CommandError) as failure:
        call_command("imagegen_providers", stdout=io.StringIO())

    message = str(failure.value)
    assert message.startswith(f"Cannot reach the cache (Redis at 127.0.0.1:{port}, CACHE_URL): ")
    assert "Connection refused" in message
    assert "\n" not in message
    assert "not-to-be-shown" not in message


# Bytes that are not UTF-8 reach Python's argv as lone surrogates ("\udcff" for b"\xff").
@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (("bootstrap_demo", "--username", "\udcff"), "--username"),
        (("bootstrap_demo", "--base-url", "http://h\udcff"), "--base-url"),
        (
            ("generate_image", "--project", "p1", "--prompt", "A desk", "--model", "\udcff"),
            "--model",
        ),
        (("generate_image", "--project", "p\ud800", "--prompt", "A desk"), "--project"),
        (("generate_batch", "board.csv", "--project", "\udcff" * 100), "--project"),
    ],
)
def test_an_argument_that_is_not_utf8_is_refused_by_name(command, flag):
    with pytest.raises(CommandError) as failure:
        call_command(*command, stdout=io.StringIO())

    message = str(failure.value)
    assert message.startswith(f"{flag} ")
    assert "is not UTF-8 text" in message
    assert len(message) < 200
