"""Local development: debug on, SQLite and files on disk unless the environment says otherwise."""

from config.settings.base import *  # noqa: F403
from config.settings.base import configured_providers, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-development-only-not-a-secret")
IMAGEGEN_PROVIDERS = configured_providers(debug=DEBUG)
# No collectstatic here: the staticfiles finders serve static files (WhiteNoise has no root).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
