"""Production: debug off, a real secret, TLS-aware security headers, vendor providers only."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import IMAGEGEN_PROVIDERS, SECRET_KEY, env

DEBUG = False
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random string of at least 50 characters in production."
    )
if any(entry["BACKEND"].endswith("OfflineSketchProvider") for entry in IMAGEGEN_PROVIDERS.values()):
    raise ImproperlyConfigured("The offline sketch provider is for local development only.")

# TLS ends at the proxy, which tells us the original scheme.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [
    # security.W008 (no SSL redirect): a redirect cannot protect an API, whose clients have sent
    # their bearer token and body in clear before any redirect arrives. The proxy in front
    # serves HTTPS only; set DJANGO_SECURE_SSL_REDIRECT=1 where browsers reach the app directly.
    *([] if SECURE_SSL_REDIRECT else ["security.W008"]),
    # security.W021 (no HSTS preload): preloading commits the whole domain to HTTPS in browsers
    # for months and is hard to undo; the domain's owner opts in deliberately.
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Hashed, compressed static files (run `manage.py collectstatic`), cached forever by browsers.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
