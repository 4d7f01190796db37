"""What every manage.py command of the project shares: a one-line error, not a traceback, when
the database cannot be reached."""

from __future__ import annotations

import traceback
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper


class OperatorCommand(BaseCommand):
    """A management command whose failure to connect to the database ends it with one line that
    names the database and what to do (exit status 1), instead of the driver's traceback.

    Only a failure to connect counts: any other database error still propagates as it is.
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except OperationalError as exc:
            database = connecting(exc)
            if database is None:
                raise
            raise CommandError(unreachable_database_message(database, exc)) from exc


def connecting(exc: BaseException) -> BaseDatabaseWrapper | None:
    """The database connection that `exc` was raised while opening, if it was."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        # Django opens every connection in `ensure_connection`; an error raised inside it is a
        # failure to connect, whatever the driver calls it.
        if frame.f_code.co_name == "ensure_connection":
            database = frame.f_locals.get("self")
            if isinstance(database, BaseDatabaseWrapper):
                return database
    return None


def unreachable_database_message(database: BaseDatabaseWrapper, exc: BaseException) -> str:
    """Where the database was looked for (never its password), why it failed, what to do."""
    settings = database.settings_dict
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if database.vendor == "sqlite":
        where = f"the SQLite file {settings['NAME']}"
        check = "that its folder exists and is writable"
    else:
        host = settings.get("HOST") or "the local socket"
        port = f":{settings['PORT']}" if settings.get("HOST") and settings.get("PORT") else ""
        where = f"{database.display_name} database {settings['NAME']!r} at {host}{port}"
        check = "that the server is running and reachable"
    return (
        f"Cannot connect to {where} ({reason}). Check {check}, and that DATABASE_URL points to it."
    )
