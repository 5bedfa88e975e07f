"""Everything lives here; production.py only tightens, test.py only speeds up."""
from __future__ import annotations

from pathlib import Path

from lookfirst import env

BASE_DIR = Path(__file__).resolve().parents[1]
LOOKFIRST_HOME = env.home()

SECRET_KEY = env.text("DJANGO_SECRET_KEY") or "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
DEBUG = env.flag("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h for h in env.text("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env.text("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "lookfirst.accounts",
    "lookfirst.pools",
    "lookfirst.ingest",
    "lookfirst.scoring",
    "lookfirst.curation",
    "lookfirst.training",
    "lookfirst.labelstudio",
    "ninja",  # serves the API docs' assets locally (no CDN)
    "lookfirst.snapshots",
    "lookfirst.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "lookfirst.accounts.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "lookfirst.urls"
WSGI_APPLICATION = "lookfirst.wsgi.application"

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
                "lookfirst.accounts.context.roles",
            ]
        },
    }
]

DATABASES = {"default": env.parse_database_url(env.text("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/lookfirst")).django()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pools:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serve app and vendored assets without a collectstatic step
STATIC_ROOT = env.text("LOOKFIRST_STATIC_ROOT") or None  # collectstatic target for deployments
MEDIA_ROOT = Path(env.text("LOOKFIRST_MEDIA_ROOT") or LOOKFIRST_HOME / "media")
UPLOAD_ROOT = LOOKFIRST_HOME / "uploads"

# Uploads are streamed to disk; a pool upload above this size is refused before any work is done.
LOOKFIRST_MAX_UPLOAD_BYTES = env.integer("LOOKFIRST_MAX_UPLOAD_BYTES", 2 * 1024**3)
# Per-image limits: bytes on disk and decoded pixels (decompression bombs).
LOOKFIRST_MAX_IMAGE_BYTES = env.integer("LOOKFIRST_MAX_IMAGE_BYTES", 32 * 1024**2)
LOOKFIRST_MAX_IMAGE_PIXELS = env.integer("LOOKFIRST_MAX_IMAGE_PIXELS", 40_000_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

CELERY_BROKER_URL = env.text("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {
    "workers.tasks.ingest.*": {"queue": "cpu"},
    "workers.tasks.scoring.dispatch": {"queue": "cpu"},
    "workers.tasks.scoring.chunk": {"queue": "gpu"},
    "workers.tasks.exports.*": {"queue": "cpu"},
    "workers.tasks.curation.*": {"queue": "cpu"},
    "workers.tasks.training.*": {"queue": "training"},
    "workers.tasks.labelstudio.*": {"queue": "cpu"},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacknowledged task (its worker was killed) goes back to the queue after this many seconds.
    "visibility_timeout": env.integer("LOOKFIRST_VISIBILITY_TIMEOUT", 3600),
    # How often a worker sweeps for such tasks (seconds x every Nth sweep scans Redis).
    "unacked_restore_interval": env.integer("LOOKFIRST_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env.integer("LOOKFIRST_RESTORE_THROTTLE", 10),
    # Lets several installations (or test runs) share one Redis without taking each other's tasks.
    "global_keyprefix": env.text("LOOKFIRST_BROKER_PREFIX"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.text("LOOKFIRST_LOG_LEVEL", "WARNING")},
}
