"""The test suite: real PostgreSQL, vendors at fake hosts that `responses` intercepts."""

from config.settings.base import *  # noqa: F403
from config.settings.base import GEMINI_IMAGE_TOKEN_PRICES, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-with-enough-length-for-hs256"  # noqa: S105
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/imagegen")
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_BROKER_URL = ""
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405
# No collectstatic here: the staticfiles finders serve static files (WhiteNoise has no root).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

RECRAFT_TEST_URL = "https://recraft.test/v1"
GEMINI_TEST_URL = "https://gemini.test/v1beta"
IMAGEGEN_PROVIDERS = {
    "recraft-ai": {
        "BACKEND": "imagegen.providers.recraft.RecraftProvider",
        "OPTIONS": {
            "api_key": "test-recraft-key",
            "base_url": RECRAFT_TEST_URL,
            "model": "recraftv4_1",
        },
    },
    "google-imagen": {
        "BACKEND": "imagegen.providers.google.GoogleImageProvider",
        "OPTIONS": {
            "api_key": "test-gemini-key",
            "base_url": GEMINI_TEST_URL,
            "model": "gemini-2.5-flash-image",
            "prices": GEMINI_IMAGE_TOKEN_PRICES,
        },
    },
}
IMAGEGEN_PROVIDER_TIMEOUT = 5.0
IMAGEGEN_CONNECT_TIMEOUT = 1.0
IMAGEGEN_BACKOFF_BASE = 0.0
IMAGEGEN_BACKOFF_CAP = 0.0
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "image-generation": "10000/min",
        "writes": "10000/min",
        "auth": "10000/min",
    },
}
