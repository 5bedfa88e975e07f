"""The one place that reads the environment. Everything else asks this module."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def text(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def home() -> Path:
    """LOOKFIRST_HOME: state folder for media, embedded servers and credentials."""
    return Path(os.environ.get("LOOKFIRST_HOME") or Path.home() / ".lookfirst").expanduser().resolve()


@dataclass(frozen=True)
class DatabaseURL:
    name: str
    user: str
    password: str
    host: str
    port: str

    def django(self) -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }


def parse_database_url(url: str) -> DatabaseURL:
    """Parse postgresql://user:pw@host:port/name, also ?host=/socket/dir for Unix sockets.

    >>> parse_database_url("postgresql://postgres@127.0.0.1:5432/lookfirst").port
    '5432'
    >>> parse_database_url("postgresql://postgres:@/postgres?host=/tmp/pg").host
    '/tmp/pg'
    """
    parts = urlparse(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [unquote(parts.hostname or "")])[0]
    return DatabaseURL(
        name=unquote(parts.path.lstrip("/")) or "postgres",
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=host,
        port=str(parts.port or query.get("port", [""])[0]),
    )
