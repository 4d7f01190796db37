"""Health probes for load balancers, orchestrators and monitoring (django-health-check).

`/health/live` runs no check: the process answers. `/health/ready` checks what a process needs to
serve anything: the database, with every migration of this code applied. `/health` adds the
shared services, for dashboards and alerts: the cache, the storage (read only) and, with a
broker configured, the broker and at least one Celery worker. A failing check answers 500.
https://codingjoe.dev/django-health-check/
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

from celery import Celery
from celery.app import app_or_default
from django import db
from django.conf import settings
from django.core.files.storage import storages
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from health_check.base import HealthCheck
from health_check.contrib.celery import Ping
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView, MediaType
from kombu.exceptions import KombuError

# Where storage is asked for a key that never exists: a lookup proves the store answers, with
# our credentials, and writes nothing (a probe must not cost a PUT per call).
STORAGE_PROBE_KEY = "health/probe"
# The probes' paths (a trailing slash is optional, as everywhere in the API).
PROBE_PATH = re.compile(r"^/health(/live|/ready)?/?$")
# Longest a socket call of the broker check may wait (the worker ping's own timeout, if lower).
BROKER_CHECK_SECONDS = 1.0


@dataclasses.dataclass
class MigrationsApplied(HealthCheck):
    """Every migration this code has is applied: a process of a new release must not serve from
    the old schema while `migrate` has yet to run. Once seen applied, not looked up again."""

    alias: str = "default"
    _applied: ClassVar[set[str]] = set()

    def run(self) -> None:
        if self.alias in self._applied:
            return
        connection = connections[self.alias]
        try:
            with connection.temporary_connection():
                executor = MigrationExecutor(connection)
                plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except db.Error as exc:
            raise ServiceUnavailable("the database could not be read") from exc
        if plan:
            names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan)
            raise ServiceUnavailable(f"{len(plan)} migration(s) not applied: {names}")
        self._applied.add(self.alias)


@dataclasses.dataclass
class StorageAnswers(HealthCheck):
    """The image storage answers a lookup (on S3, a HEAD request with our credentials)."""

    alias: str = "default"

    def run(self) -> None:
        storage = storages[self.alias]
        try:
            # On S3, a listing bounded to a few seconds: a HEAD of a missing key cannot tell a
            # missing bucket (also a 404) from a missing key, and the upload client's retries
            # and 30 s read timeout held the probe for two minutes when S3 stopped answering.
            probe = getattr(storage, "probe", None)
            if probe is not None:
                probe(STORAGE_PROBE_KEY)
            else:
                storage.exists(STORAGE_PROBE_KEY)
        except Exception as exc:  # botocore's and the file system's errors alike
            raise ServiceUnavailable(f"the storage did not answer ({type(exc).__name__})") from exc


LIVENESS: tuple = ()
READINESS: tuple = (
    "health_check.checks.Database",
    "config.health.MigrationsApplied",
)


@dataclasses.dataclass
class CeleryWorkers(Ping):
    """The broker takes a connection and at least one Celery worker answers a ping through it."""

    # The library's Ping names its app in its report, with the object's address.
    app: Celery = dataclasses.field(default_factory=app_or_default, repr=False)
    limit: int | None = dataclasses.field(default=1, repr=False)

    def run(self) -> None:
        # Without this, a broker that refuses connections held the ping in kombu's retries past
        # the check's timeout, and the report said "Timed out" instead of naming the broker.
        # A broker that accepts connections and never answers (a frozen Redis) held the check,
        # and /health with it, for two of the broker's socket timeouts (10 s by default): one
        # try, each socket call bounded by this check's own budget.
        budget = min(BROKER_CHECK_SECONDS, self.timeout.total_seconds())
        options = {
            **(self.app.conf.broker_transport_options or {}),
            "socket_timeout": budget,
            "socket_connect_timeout": budget,
        }
        try:
            with self.app.connection_for_write(transport_options=options) as connection:
                connection.ensure_connection(max_retries=0, interval_start=0)
        except (OSError, KombuError) as exc:
            raise ServiceUnavailable("the broker did not answer") from exc
        super().run()


# The library's ?format= values, which it reads before the Accept header.
_FORMATS = frozenset({"json", "text", "atom", "rss", "openmetrics"})


@method_decorator(csrf_exempt, name="dispatch")
class HealthView(HealthCheckView):
    """The library's view, with an Accept header it cannot parse answered 406, not 500, and
    any method but GET (and HEAD) a 405, not the CSRF check's 403."""

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            if request.GET.get("format") not in _FORMATS:
                list(MediaType.parse_header(request.headers.get("accept", "*/*")))
        except ValueError:
            return HttpResponse(
                "Not Acceptable: the Accept header is malformed; send application/json, "
                "text/plain or text/html, or add ?format=json",
                status=406,
                content_type="text/plain; charset=utf-8",
            )
        return await super().get(request, *args, **kwargs)


class StatusView(HealthView):
    """Readiness, the cache, storage and, when a broker is configured, a worker's answer."""

    @property
    def checks(self) -> tuple:
        checks: list[Any] = [*READINESS, "health_check.checks.Cache", StorageAnswers]
        if settings.CELERY_BROKER_URL:
            checks.append(CeleryWorkers)
        return tuple(checks)


def skip_host_check_for_probes(get_response: Any) -> Any:
    """Health probes are answered whatever their Host header.

    Load balancers (an AWS target group, say) and kubelets probe a process by its own address,
    which is not in ALLOWED_HOSTS, so the host check turned every probe into a 400 and the
    process was never taken into service. The probes' answers name no host.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if PROBE_PATH.match(request.path_info):
            request.get_host = request._get_raw_host  # noqa: SLF001
        return get_response(request)

    return middleware
