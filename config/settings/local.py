"""Local development: debug on, SQLite and files on disk unless the environment says otherwise."""

from config.settings.base import *  # noqa: F403
from config.settings.base import configured_providers, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-development-only-not-a-secret")
IMAGEGEN_PROVIDERS = configured_providers(debug=DEBUG)
