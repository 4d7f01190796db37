"""When the database goes away: the pool hands out live connections only once PostgreSQL has
dropped the ones it held (a restart, a failover), and a request meanwhile is a 503 to retry."""

from __future__ import annotations

import socket

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import QuerySet

from conftest import python_process

# A process with the pool (the production default), which fills it with connections, waits
# while PostgreSQL drops them, then runs queries one at a time and prints how many failed.
SCRIPT = """
import sys, threading, django
django.setup()
from django.db import connection, connections, OperationalError, InterfaceError
barrier = threading.Barrier(8)
def hold():
    with connection.cursor() as cursor:
        barrier.wait()
        cursor.execute("SELECT 1")
    connections.close_all()
threads = [threading.Thread(target=hold) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("filled", flush=True)
sys.stdin.readline()
failed = 0
for _ in range(8):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except (OperationalError, InterfaceError):
        failed += 1
    connection.close()
print("failed", failed, flush=True)
"""


def pooled_process(script: str, *, timeout: int):
    """`script` in a process on the test database with the production default, the pool (its
    connections named `pooltest`), waiting at most `timeout` seconds for a connection."""
    name = connection.settings_dict["NAME"]
    return python_process(
        script,
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}?application_name=pooltest",
        DATABASE_POOL="true",
        DATABASE_POOL_TIMEOUT=str(timeout),
    )


@pytest.mark.django_db(transaction=True)
def test_queries_after_postgresql_dropped_the_pools_connections_succeed():
    # Checked one at a time with psycopg_pool's backoff (1, 2, 4 s...), eight dead connections
    # outlast a 5 s timeout: the first query would fail with a pool timeout.
    process = pooled_process(SCRIPT, timeout=5)
    try:
        assert process.stdout.readline().strip() == "filled"
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
            dropped = db.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'pooltest'",
                (connection.settings_dict["NAME"],),
            ).fetchone()[0]
        assert dropped >= 8  # the pool's connections, now dead
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "failed 0"
    finally:
        process.kill()
        process.wait()


# A process whose every connection check fails (dead connections handed back again and again):
# it must not use a connection it could not check, and must give up within the pool's timeout.
NEVER_LIVE = """
import time, django, psycopg
from psycopg_pool import ConnectionPool
django.setup()
from django.db import connection, OperationalError
def dead(conn):
    raise psycopg.OperationalError("terminating connection due to administrator command")
ConnectionPool.check_connection = staticmethod(dead)
started = time.monotonic()
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    print("used an unchecked connection", flush=True)
except OperationalError as exc:
    print(f"refused after {time.monotonic() - started:.1f} s", flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_fails_its_check_is_never_used_and_the_wait_is_bounded():
    process = pooled_process(NEVER_LIVE, timeout=1)
    output, _ = process.communicate(timeout=60)
    outcome, _, seconds = output.strip().splitlines()[-1].rpartition(" after ")
    assert outcome == "refused"
    assert 1 <= float(seconds.removesuffix(" s")) < 3  # the pool's timeout, not one per try


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_database_that_went_away_is_a_503_to_retry(api, monkeypatch, caplog, error):
    def gone(queryset):
        raise error("connection failed: server closed the connection unexpectedly")

    monkeypatch.setattr(QuerySet, "_fetch_all", gone)

    response = api.get("/image-gen")

    assert response.status_code == 503
    assert response.json() == {
        "success": False,
        "message": "The database is unavailable right now; retry in a few seconds.",
        "code": "database_unavailable",
    }
    assert response["Retry-After"] == "5"
    assert "database_unavailable" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statements",
    [
        ["DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"],
        ["SET LOCAL statement_timeout = 10", "SELECT pg_sleep(1)"],
    ],
    ids=["deadlock", "statement timeout"],
)
def test_a_database_error_that_is_no_outage_stays_an_internal_error(api, monkeypatch, statements):
    def failing(queryset):
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    monkeypatch.setattr(QuerySet, "_fetch_all", failing)

    response = api.get("/image-gen")

    assert response.status_code == 500
    assert response.json()["code"] == "internal"


@pytest.mark.django_db
def test_a_database_shutting_down_is_a_503(api, monkeypatch):
    def shutting_down(queryset):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'terminating connection due to administrator "
                "command' USING ERRCODE = '57P01'; END $$"
            )

    monkeypatch.setattr(QuerySet, "_fetch_all", shutting_down)

    assert api.get("/image-gen").json()["code"] == "database_unavailable"


def test_a_database_server_that_never_answers_fails_the_connection_in_time():
    # Accepts connections and says nothing, as a hung host or a black-holed network does.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        process = python_process(
            "import time, django; django.setup(); from django.db import connection\n"
            "started = time.monotonic()\n"
            "try:\n    connection.ensure_connection()\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, round(time.monotonic() - started))",
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/imagegen",
            DATABASE_POOL="false",
            DATABASE_CONNECT_TIMEOUT="2",
        )
        try:
            output, _ = process.communicate(timeout=30)
        finally:
            process.kill()
    assert output.split() == ["OperationalError", "2"]
