"""Every setting of the project, read from the environment in one place with safe local defaults."""

from __future__ import annotations

import logging
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from config.text import shown

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class Env(environ.Env):
    """django-environ's reader, strict about numbers and switches: a malformed value stops
    start-up with `ImproperlyConfigured` naming the variable (and its value, unless it is a
    database URL, which may hold a password). django-environ alone raises a `ValueError` that
    names neither (`could not convert string to float: ''` for "abc"), reads a float by dropping
    every character but digits, commas, dots and minus signs ("1e3" as 13.0), and reads any
    switch it does not know as off ("ture", or "flase" for a setting that is on by default)."""

    EXPECTED = {int: "a whole number", float: "a number", bool: "true or false"}
    DATABASE_ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")
    # The words the README lists, and no others (django-environ also takes "ok" and "y").
    BOOLEAN_TRUE_STRINGS = ("true", "on", "yes", "1")
    BOOLEAN_FALSE_STRINGS = ("false", "off", "no", "0")
    # What Python's int() and float() also take: "1_000", and digits of other scripts ("٣").
    _NUMBER = re.compile(r"[0-9eE.+\-]+|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as exc:
            value = shown(self.ENVIRON.get(f"{self.prefix}{var}"), limit=50)
            expected = self.EXPECTED.get(cast, "a valid value")
            raise ImproperlyConfigured(
                f"{self.prefix}{var}={value} is not {expected}: correct or unset it."
            ) from exc

    def db_url(
        self,
        var: str = environ.Env.DEFAULT_DATABASE_ENV,
        default: Any = environ.Env.NOTSET,
        engine: str | None = None,
    ) -> dict:
        try:
            config = super().db_url(var, default=default, engine=engine)
        except ValueError:
            # Not the parser's reason: it may quote a piece of the URL, password included.
            raise ImproperlyConfigured(
                f"{self.prefix}{var} is not a valid database URL (a character in the password "
                "that must be percent-encoded, such as / or @?): correct it."
            ) from None
        usage = "postgres://user:password@host:5432/name or sqlite:///path/to/file"
        if config.get("ENGINE") not in self.DATABASE_ENGINES:
            scheme = str(config.get("ENGINE", "")).rsplit(".", 1)[-1]
            raise ImproperlyConfigured(
                f"{self.prefix}{var} names a database this service does not run on ({scheme!r}): "
                f"use {usage}."
            )
        if not config.get("NAME"):
            raise ImproperlyConfigured(
                f"{self.prefix}{var} names no database (the path after the host): use {usage}."
            )
        return config

    db = db_url

    def int(self, var: str, default: Any = environ.Env.NOTSET, *, minimum: Any = None) -> Any:
        """A whole number; with `minimum`, one below it stops start-up by name."""
        return self._bounded(var, super().int(var, default=default), minimum)

    def float(
        self,
        var: str,
        default: Any = environ.Env.NOTSET,
        *,
        minimum: Any = None,
        above: bool = False,
    ) -> Any:
        """A number; with `minimum`, one below it (or not above it, with `above`) stops
        start-up by name."""
        return self._bounded(var, super().float(var, default=default), minimum, above=above)

    def _bounded(self, var: str, value: Any, minimum: Any, *, above: bool = False) -> Any:
        # A number that parses but cannot work (0 attempts, a pool of no connections, a sweep
        # every 0 s) failed every request that reached it, or hung it.
        if minimum is not None and (value < minimum or (above and value == minimum)):
            bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            raise ImproperlyConfigured(
                f"{self.prefix}{var}={value:g} must be {bound}: correct or unset it."
            )
        return value

    @classmethod
    def parse_value(cls, value: Any, cast: Any) -> Any:
        if cast in (int, float) and not cls._NUMBER.fullmatch(str(value).strip()):
            raise ValueError(f"{value!r} is not written in ASCII digits")
        if cast is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{value!r} is not finite")
            return number
        if cast is bool and not isinstance(value, bool):
            word = str(value).strip().lower()
            if word in cls.BOOLEAN_TRUE_STRINGS:
                return True
            if word in cls.BOOLEAN_FALSE_STRINGS:
                return False
            raise ValueError(f"{value!r} is neither true nor false")
        return super().parse_value(value, cast)


env = Env()


# What rest_framework.throttling.SimpleRateThrottle.parse_rate reads: "<count>/<s|m|h|d...>".
_RATE = re.compile(r"[0-9]+/[smhd][a-z]*")


def throttle_rate(name: str, default: str) -> str:
    """A rate such as `120/min`; anything DRF cannot parse was a 500 on every request it limits."""
    rate = env.str(name, default=default).strip()
    if not _RATE.fullmatch(rate):
        raise ImproperlyConfigured(
            f"{name}={shown(rate, limit=50)} is not a rate such as 120/min (a count, a slash, "
            "and s, min, hour or day): correct or unset it."
        )
    return rate


# ---------------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storages",
    "health_check",
    "accounts",
    "projects",
    "imagegen",
]

# Health probes speak plain HTTP to the process itself: with DJANGO_SECURE_SSL_REDIRECT on, a
# redirect would pass as healthy without a check having run.
SECURE_REDIRECT_EXEMPT = [r"^health(/live|/ready)?/?$"]

MIDDLEWARE = [
    # Before anything reads the Host header (config/health.py).
    "config.health.skip_host_check_for_probes",
    "django.middleware.security.SecurityMiddleware",
    # Before anything takes a database connection: a slow upload must not hold one.
    "config.middleware.read_body_first",
    "config.middleware.refuse_too_many_fields",
    "config.middleware.reject_nul_bytes",
    "config.middleware.refuse_chunked_bodies",
    # Serves the admin's and Swagger UI's static files from collectstatic's output.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Paths have no trailing slash; the URL patterns accept one, so no redirect is ever needed.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------------------------
# Database: DATABASE_URL, e.g. postgres://user@127.0.0.1:5432/imagegen; SQLite file by default.
# ---------------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Connections are opened per request and released before slow vendor calls (see services).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0, minimum=0)
# A reused connection is checked before use: after a PostgreSQL restart every connection kept
# is dead, and each handed out unchecked was a 500.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A server that stops answering (a partition, a hung host) fails requests instead of holding
    # their threads: connecting is bounded, the kernel gives up on data the server does not
    # acknowledge, and keepalives find a dead peer of an idle connection.
    # https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        connect_timeout=env.int("DATABASE_CONNECT_TIMEOUT", default=5),
        tcp_user_timeout=env.int("DATABASE_TCP_USER_TIMEOUT", default=30) * 1000,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_POOL", default=True
):
    # Releasing a connection returns it to a per-process pool, so taking one back after the
    # vendor call costs nothing, while a new PostgreSQL connection costs ~10 ms.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
    # The pool's connections are checked by our backend as they are taken, which drops all the
    # dead ones at once (config/postgresql/base.py), not by psycopg_pool, which waited 1, 2,
    # 4 s... for each dead one it found.
    if DATABASES["default"]["CONN_MAX_AGE"]:
        # Django refuses persistent connections with a pool at the first connection: every
        # request was a 500 and /health/ready an "Unknown Error".
        raise ImproperlyConfigured(
            f"DATABASE_CONN_MAX_AGE={DATABASES['default']['CONN_MAX_AGE']} cannot be used with "
            "the connection pool (DATABASE_POOL, on by default): keep it 0, or set "
            "DATABASE_POOL=false."
        )
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=16, minimum=1)
    _pool_min = env.int("DATABASE_POOL_MIN_SIZE", default=min(2, _pool_max), minimum=0)
    if _pool_min > _pool_max:
        raise ImproperlyConfigured(
            f"DATABASE_POOL_MIN_SIZE={_pool_min} is more than DATABASE_POOL_MAX_SIZE={_pool_max}: "
            "lower the first or raise the second."
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _pool_min,
        "max_size": _pool_max,
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0, minimum=0, above=True),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (runserver's threads, generate_batch) queue for the write lock instead
    # of failing with "database is locked".
    # https://docs.djangoproject.com/en/5.2/ref/databases/#database-is-locked-errors
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)

# ---------------------------------------------------------------------------------------------
# Cache: shared by every worker for throttling and the provider circuit breaker.
# https://docs.djangoproject.com/en/5.2/topics/cache/#redis
# ---------------------------------------------------------------------------------------------
CACHE_URL = env.str("CACHE_URL", default="")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    # redis-py refuses it at the first cache call, which was a 500 on every login.
    raise ImproperlyConfigured(
        "CACHE_URL is not a Redis URL (redis://host:6379/1, rediss://... or unix://...): "
        "correct or unset it."
    )
# Seconds to connect to Redis and for each command: a cache that does not answer must not hold
# requests (config/cache.py lets them go on without it).
CACHE_SOCKET_TIMEOUT = env.float("CACHE_SOCKET_TIMEOUT", default=1.0)
if CACHE_SOCKET_TIMEOUT <= 0:
    # redis-py takes 0 as "do not wait" (every call fails) and refuses a negative one per call.
    raise ImproperlyConfigured(
        f"CACHE_SOCKET_TIMEOUT={CACHE_SOCKET_TIMEOUT:g} must be more than 0 seconds."
    )
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "OPTIONS": {
                "socket_connect_timeout": CACHE_SOCKET_TIMEOUT,
                "socket_timeout": CACHE_SOCKET_TIMEOUT,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# ---------------------------------------------------------------------------------------------
# Static files and storage. With AWS_STORAGE_BUCKET_NAME set, images go to S3 (django-storages);
# otherwise to the file system under MEDIA_ROOT. Nothing outside this block knows which.
# https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
# ---------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
# Presigned image URLs stay valid this long (seconds).
AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=3600)


def storage_backend(bucket: str) -> dict:
    """The STORAGES["default"] entry for a bucket name (S3), or the file system when empty."""
    if not bucket:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            # Keys are deterministic (images/<project>/<uuid>.jpg): overwrite, never rename.
            "OPTIONS": {"allow_overwrite": True},
        }
    from botocore.config import Config

    return {
        # django-storages' backend, one boto3 resource per process (see config/storages.py).
        "BACKEND": "config.storages.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "access_key": AWS_ACCESS_KEY_ID,
            "secret_key": AWS_SECRET_ACCESS_KEY,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            # Images are far below the multipart threshold: upload in the calling thread instead
            # of starting transfer threads for every object.
            "use_threads": False,
            # Uploads share one client: one pooled connection per thread (gunicorn.conf.py runs
            # 128 per worker, CELERY_WORKER_CONCURRENCY 200).
            "client_config": Config(
                max_pool_connections=env.int("AWS_MAX_POOL_CONNECTIONS", default=200),
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        },
    }


STORAGES = {
    "default": storage_backend(AWS_STORAGE_BUCKET_NAME),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# ---------------------------------------------------------------------------------------------
# REST API, JWT and the OpenAPI schema
# ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.tokens.BearerAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": [
        "config.filters.ListQueryParameters",
        "django_filters.rest_framework.DjangoFilterBackend",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    # JSON is the only format: ?format=xml would be a misleading 404, and a list's ?format=
    # an unknown parameter like any other.
    "URL_FORMAT_OVERRIDE": None,
    # Writes other than generation (projects, image edits and deletes), per user; views that
    # generate or log in set their own.
    "DEFAULT_THROTTLE_CLASSES": ["config.throttling.WriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "image-generation": throttle_rate("IMAGEGEN_THROTTLE_RATE", "120/min"),
        "writes": throttle_rate("API_WRITE_THROTTLE_RATE", "120/min"),
        "auth": throttle_rate("AUTH_THROTTLE_RATE", "30/min"),
    },
    "UNAUTHENTICATED_USER": None,
    # Rate limits key anonymous clients by address: trust only this many proxies' X-Forwarded-For
    # entries, or a client could claim a new address on every request.
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        minutes=env.int("JWT_ACCESS_MINUTES", default=15, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # A refresh token trades for one new pair, also when requests carrying it race.
    "TOKEN_REFRESH_SERIALIZER": "accounts.tokens.TokenRefreshOnceSerializer",
    # Credentials must be JSON strings: a number is bad input (400), not a failed login.
    "TOKEN_OBTAIN_SERIALIZER": "accounts.tokens.TokenObtainStrictSerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "accounts.tokens.TokenBlacklistStrictSerializer",
    # Tokens carry a digest of the password hash: a password change (or reset) revokes them all.
    "CHECK_REVOKE_TOKEN": True,
    "UPDATE_LAST_LOGIN": False,
    # Pinned: tokens signed with any other algorithm (or "none") are refused.
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Image generation API",
    "DESCRIPTION": "Turns a segment's visual prompt and art style into a stored JPEG.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # /schema and /docs are for people to read: public, and never refused for a stale token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.paths_without_trailing_slash",
        "config.openapi.document_retry_after",
    ],
}

# Request bodies larger than this are refused with 413. A 200-item batch at every length
# limit, written as JSON encoders do by default (each character outside ASCII as \uXXXX, two
# of them for an emoji: 12 bytes), is about 2.6 MB; the cap is generate_batch's file cap.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=4 * 1024 * 1024, minimum=1)

# ---------------------------------------------------------------------------------------------
# Image generation: providers, routing, retries, limits
# ---------------------------------------------------------------------------------------------
RECRAFT_API_KEY = env.str("RECRAFT_API_KEY", default="")
RECRAFT_API_URL = env.str("RECRAFT_API_URL", default="https://external.api.recraft.ai/v1")
RECRAFT_MODEL = env.str("RECRAFT_MODEL", default="recraftv4_1")
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
GEMINI_API_URL = env.str(
    "GEMINI_API_URL", default="https://generativelanguage.googleapis.com/v1beta"
)
GEMINI_IMAGE_MODEL = env.str("GEMINI_IMAGE_MODEL", default="gemini-2.5-flash-image")

# USD per million output image tokens, by Gemini model (Google bills image output by token).
GEMINI_IMAGE_TOKEN_PRICES = {
    "gemini-2.5-flash-image": "30",
    "gemini-3.1-flash-lite-image": "30",
    "gemini-nano-banana-2.1": "30",
    "gemini-3-pro-image": "120",
}


def configured_providers(*, debug: bool) -> dict:
    """The provider registry: one entry per vendor with a key, or the offline sketch in debug."""
    providers = {}
    if RECRAFT_API_KEY:
        providers["recraft-ai"] = {
            "BACKEND": "imagegen.providers.recraft.RecraftProvider",
            "OPTIONS": {
                "api_key": RECRAFT_API_KEY,
                "base_url": RECRAFT_API_URL,
                "model": RECRAFT_MODEL,
            },
        }
    if GEMINI_API_KEY:
        providers["google-imagen"] = {
            "BACKEND": "imagegen.providers.google.GoogleImageProvider",
            "OPTIONS": {
                "api_key": GEMINI_API_KEY,
                "base_url": GEMINI_API_URL,
                "model": GEMINI_IMAGE_MODEL,
                "prices": GEMINI_IMAGE_TOKEN_PRICES,
            },
        }
    if not providers and debug:
        providers["offline-sketch"] = {
            "BACKEND": "imagegen.providers.offline.OfflineSketchProvider"
        }
    return providers


IMAGEGEN_PROVIDERS = configured_providers(debug=DEBUG)

# Which route each content category goes to (the seed's mapping); operators may re-point one.
IMAGEGEN_ROUTES = {
    "realistic": env.str("IMAGEGEN_ROUTE_REALISTIC", default="recraft-ai"),
    "artistic": env.str("IMAGEGEN_ROUTE_ARTISTIC", default="google-imagen"),
    "text": env.str("IMAGEGEN_ROUTE_TEXT", default="google-imagen"),
}
# The category of a prompt that carries no clear signal.
IMAGEGEN_DEFAULT_CATEGORY = env.str("IMAGEGEN_DEFAULT_CATEGORY", default="realistic")

IMAGEGEN_DEFAULT_ASPECT_RATIO = env.str("IMAGEGEN_DEFAULT_ASPECT_RATIO", default="16:9")
IMAGEGEN_JPEG_QUALITY = env.int("IMAGEGEN_JPEG_QUALITY", default=90)

# Faults: a bound on one provider call (connect + whole body), attempts per provider, backoff.
IMAGEGEN_PROVIDER_TIMEOUT = env.float("IMAGEGEN_PROVIDER_TIMEOUT", default=60.0)
IMAGEGEN_CONNECT_TIMEOUT = env.float("IMAGEGEN_CONNECT_TIMEOUT", default=5.0)
IMAGEGEN_PROVIDER_ATTEMPTS = env.int("IMAGEGEN_PROVIDER_ATTEMPTS", default=3, minimum=1)
IMAGEGEN_BACKOFF_BASE = env.float("IMAGEGEN_BACKOFF_BASE", default=1.0)
IMAGEGEN_BACKOFF_CAP = env.float("IMAGEGEN_BACKOFF_CAP", default=20.0)
IMAGEGEN_FALLBACK_ON_BLOCK = env.bool("IMAGEGEN_FALLBACK_ON_BLOCK", default=True)
IMAGEGEN_MAX_IMAGE_BYTES = env.int("IMAGEGEN_MAX_IMAGE_BYTES", default=20 * 1024 * 1024, minimum=1)
IMAGEGEN_BREAKER_THRESHOLD = env.int("IMAGEGEN_BREAKER_THRESHOLD", default=5)
IMAGEGEN_BREAKER_COOLDOWN = env.float("IMAGEGEN_BREAKER_COOLDOWN", default=30.0)
# Decoding and encoding run at most this many at once per process: it bounds memory in bursts.
IMAGEGEN_CONVERSION_CONCURRENCY = env.int("IMAGEGEN_CONVERSION_CONCURRENCY", default=4, minimum=1)
# glibc's allocator keeps image buffers for reuse (imaging.tune_allocator); 0 = glibc's default.
IMAGEGEN_MALLOC_ARENA_MAX = env.int("IMAGEGEN_MALLOC_ARENA_MAX", default=2)
IMAGEGEN_MALLOC_MMAP_THRESHOLD = env.int("IMAGEGEN_MALLOC_MMAP_THRESHOLD", default=32 * 1024 * 1024)
IMAGEGEN_MALLOC_TRIM_THRESHOLD = env.int("IMAGEGEN_MALLOC_TRIM_THRESHOLD", default=64 * 1024 * 1024)

# Abuse limits.
IMAGEGEN_MAX_IN_FLIGHT_PER_USER = env.int("IMAGEGEN_MAX_IN_FLIGHT_PER_USER", default=32)
# Images a user may have waiting for a worker (storyboards, respond-async): one user's backlog
# cannot grow without bound ahead of everyone else's in the shared queue.
IMAGEGEN_MAX_QUEUED_PER_USER = env.int("IMAGEGEN_MAX_QUEUED_PER_USER", default=1000)
IMAGEGEN_LIST_MAX_LIMIT = env.int("IMAGEGEN_LIST_MAX_LIMIT", default=500, minimum=1)
# A maximum set below the default page on its own lowers the default page with it.
IMAGEGEN_LIST_DEFAULT_LIMIT = env.int(
    "IMAGEGEN_LIST_DEFAULT_LIMIT", default=min(100, IMAGEGEN_LIST_MAX_LIMIT), minimum=1
)
if IMAGEGEN_LIST_DEFAULT_LIMIT > IMAGEGEN_LIST_MAX_LIMIT:
    raise ImproperlyConfigured(
        f"IMAGEGEN_LIST_DEFAULT_LIMIT={IMAGEGEN_LIST_DEFAULT_LIMIT} is more than "
        f"IMAGEGEN_LIST_MAX_LIMIT={IMAGEGEN_LIST_MAX_LIMIT}: lower the first or raise the second."
    )

# ---------------------------------------------------------------------------------------------
# Celery: with CELERY_BROKER_URL unset, tasks run in-process (no extra service needed locally).
# With a broker (e.g. redis://127.0.0.1:6379/0) a worker runs them: `celery -A config worker`.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ---------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# In-process as on a worker: a task's failure is the task's (logged, and in its result), not the
# caller's, and a task's retry runs again (Celery re-raises Retry itself when this is on).
CELERY_TASK_EAGER_PROPAGATES = False
# A task is acknowledged when it ends, so a killed worker's task is delivered again; the row's
# status makes the second delivery a no-op when the first one finished.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Generations wait on vendors, not the CPU: one process of threads holds many calls at once,
# by default a whole storyboard (IMAGEGEN_BATCH_MAX_ITEMS).
CELERY_WORKER_POOL = env.str("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=200)
# Redis re-delivers an unacknowledged task after this long: keep it above the longest task.
# A broker that stops answering fails a publish after the socket timeout (per try of the
# publish retry policy) instead of holding the request for ever; the row stays pending.
_BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_timeout": _BROKER_SOCKET_TIMEOUT,
    "socket_connect_timeout": _BROKER_SOCKET_TIMEOUT,
}
# One retry, half a second later: a refused publish costs the request about 0.5 s, a hung
# broker at most two socket timeouts.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.5,
    "interval_step": 0,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# `celery -A config beat` runs the sweep that settles generations whose worker died.
CELERY_BEAT_SCHEDULE = {
    "imagegen-sweep-stale": {
        "task": "imagegen.sweep_stale",
        "schedule": env.float("IMAGEGEN_SWEEP_INTERVAL", default=60.0, minimum=0, above=True),
    },
}

# Calls in flight at once per provider in one process (API worker or Celery worker), so a burst
# does not trip the vendors' rate limits: size it to the account's quota.
IMAGEGEN_PROVIDER_CONCURRENCY = env.int("IMAGEGEN_PROVIDER_CONCURRENCY", default=100, minimum=1)
# A storyboard (`POST /image-gen/batch`) holds at most this many items.
IMAGEGEN_BATCH_MAX_ITEMS = env.int("IMAGEGEN_BATCH_MAX_ITEMS", default=200)
# How long a generation whose image is stored keeps trying to record it while the database is
# unavailable (seconds), before it deletes the image and fails.
IMAGEGEN_RECORD_RETRY_SECONDS = env.float("IMAGEGEN_RECORD_RETRY_SECONDS", default=30.0)
# A background generation that failed on provider, storage or database faults is queued again
# this many times, this many seconds later (on top of the retries inside one run).
IMAGEGEN_TASK_RETRIES = env.int("IMAGEGEN_TASK_RETRIES", default=2)
IMAGEGEN_TASK_RETRY_DELAY = env.float("IMAGEGEN_TASK_RETRY_DELAY", default=60.0)

# ---------------------------------------------------------------------------------------------
# Logging: one structured line per provider attempt; never keys or image payloads.
# ---------------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").strip().upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    # logging.config's own refusal names neither the variable nor the levels.
    raise ImproperlyConfigured(
        f"LOG_LEVEL={shown(LOG_LEVEL, limit=50)} is not DEBUG, INFO, WARNING, ERROR or CRITICAL: "
        "correct or unset it."
    )
# DEBUG's error page (and error e-mails) hide URLs holding passwords too (config/exceptions.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.exceptions.ExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# A `running` generation older than this (seconds) is presumed dead (its worker was killed) and
# may be retried; keep it above attempts x timeout x providers + backoff.
IMAGEGEN_RUNNING_LEASE = env.int("IMAGEGEN_RUNNING_LEASE", default=600)
# Longest wait honoured from a vendor's Retry-After / RetryInfo before trying again.
IMAGEGEN_RETRY_AFTER_CAP = env.float("IMAGEGEN_RETRY_AFTER_CAP", default=30.0)
