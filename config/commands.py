"""What every manage.py command of the project shares: a one-line error, not a traceback, when
an argument is not UTF-8 text or the database or the cache cannot be reached."""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.text import is_text, shown

REDIS_CACHE_MODULE = "django.core.cache.backends.redis"
# psycopg_pool's own default wait for a connection, in seconds.
DEFAULT_POOL_TIMEOUT = 30.0


class OperatorCommand(BaseCommand):
    """A management command that refuses a text argument that is not UTF-8, and whose failure to
    connect to the database or to the Redis cache ends it with one line that names what it could
    not reach and what to do (exit status 1), instead of the driver's traceback.

    Only failures to connect count: any other database or cache error propagates as it is.
    A command that never reads the database sets `requires_database = False`.
    """

    requires_database = True

    def execute(self, *args: Any, **options: Any) -> Any:
        self.check_text(options)
        try:
            if self.requires_database:
                probe_database(connections[DEFAULT_DB_ALIAS])
            return super().execute(*args, **options)
        except OperationalError as exc:
            database = connecting(exc)
            if database is None:
                raise
            raise CommandError(unreachable_database_message(database, exc)) from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # The Celery broker may be Redis too: only the cache's own calls are its failure.
            if not any(
                frame.f_globals.get("__name__") == REDIS_CACHE_MODULE for frame in frames(exc)
            ):
                raise
            raise CommandError(unreachable_cache_message(exc)) from exc
        except (BotoCoreError, ClientError) as exc:
            # Only the S3 storage speaks botocore.
            raise CommandError(unreachable_storage_message(exc)) from exc

    def check_text(self, options: dict[str, Any]) -> None:
        """Refuse a text argument that is not UTF-8: Python hands such bytes over as lone
        surrogates, which the database, the vendors and a terminal would refuse later, with a
        traceback. Arguments parsed to another type (a file name as a `Path`) are not text."""
        parser = self.create_parser("manage.py", self.__module__.rsplit(".", 1)[-1])
        for action in parser._actions:
            value = options.get(action.dest)
            for text in value if isinstance(value, list | tuple) else [value]:
                if isinstance(text, str) and not is_text(text):
                    name = action.option_strings[-1] if action.option_strings else action.dest
                    raise CommandError(
                        f"{name} {shown(text)} is not UTF-8 text (each \\udcXX stands for a "
                        "byte that is not); give it in UTF-8."
                    )


def frames(exc: BaseException) -> Iterator[FrameType]:
    """The frames `exc` went through, from where it was caught down to where it was raised."""
    return (frame for frame, _ in traceback.walk_tb(exc.__traceback__))


def connecting(exc: BaseException) -> BaseDatabaseWrapper | None:
    """The database connection that `exc` was raised while opening, if it was."""
    for frame in frames(exc):
        # Django opens every connection in `ensure_connection`; an error raised inside it is a
        # failure to connect, whatever the driver calls it.
        if frame.f_code.co_name == "ensure_connection":
            database = frame.f_locals.get("self")
            if isinstance(database, BaseDatabaseWrapper):
                return database
    return None


def probe_database(database: BaseDatabaseWrapper) -> None:
    """Connect once, directly, to a PostgreSQL database reached through a pool not yet opened.

    A pool that cannot connect retries in the background until its timeout
    (DATABASE_POOL_TIMEOUT), logging a warning at every try: an operator waited 10 s, under a
    dozen of them, for the one line saying the database was down. A direct connection is
    refused at once, and gives up on a server that does not answer within the same timeout.
    Raises `CommandError` naming the database when it cannot be reached.
    """
    pool = database.settings_dict["OPTIONS"].get("pool")
    if (
        database.vendor != "postgresql"
        or not pool
        or database.connection is not None
        or database.alias in database._connection_pools
    ):
        return
    params = database.get_connection_params()
    timeout = pool.get("timeout", DEFAULT_POOL_TIMEOUT) if isinstance(pool, dict) else None
    params.setdefault("connect_timeout", max(2, math.ceil(timeout or DEFAULT_POOL_TIMEOUT)))
    try:
        database.Database.connect(**params).close()
    except database.Database.OperationalError as exc:
        raise CommandError(unreachable_database_message(database, exc)) from exc


def unreachable_database_message(database: BaseDatabaseWrapper, exc: BaseException) -> str:
    """Where the database was looked for (never its password), why it failed, what to do."""
    config = database.settings_dict
    if database.vendor == "sqlite":
        where = f"the SQLite file {config['NAME']}"
        check = "that its folder exists and is writable"
    else:
        host = config.get("HOST") or "the local socket"
        port = f":{config['PORT']}" if config.get("HOST") and config.get("PORT") else ""
        where = f"{database.display_name} database {config['NAME']!r} at {host}{port}"
        check = "that the server is running and reachable"
    return (
        f"Cannot connect to {where} ({first_line(exc)}). Check {check}, and that DATABASE_URL "
        "points to it."
    )


def unreachable_cache_message(exc: BaseException) -> str:
    """The cache's servers (never a password in their URLs), why it failed, what to do."""
    location = settings.CACHES["default"].get("LOCATION", "")
    urls = location if isinstance(location, list | tuple) else location.split(",")
    servers = ", ".join(
        f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path
        for parts in map(urlsplit, urls)
    )
    return (
        f"Cannot reach the cache (Redis at {servers}, CACHE_URL): {first_line(exc).rstrip('.')}. "
        "Check that Redis is running there, and that CACHE_URL points to it."
    )


def unreachable_storage_message(exc: BaseException) -> str:
    """The S3 bucket and endpoint (never a credential), why it failed, what to do."""
    options = settings.STORAGES["default"].get("OPTIONS", {})
    endpoint = options.get("endpoint_url") or "AWS"
    return (
        f"Cannot reach the storage (S3 bucket {options.get('bucket_name', '')} at {endpoint}): "
        f"{first_line(exc).rstrip('.')}. The command stopped there. Check that the storage is "
        "up and that AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL and the credentials are right."
    )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
