"""Production only tightens base: a real secret, secure cookies, no debug."""
from lookfirst import env
from lookfirst.settings.base import *  # noqa: F403

if not env.text("DJANGO_SECRET_KEY"):
    raise RuntimeError("DJANGO_SECRET_KEY must be set in production")
DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
