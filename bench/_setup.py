"""Shared bench setup: Django on a dedicated database (created and migrated if missing)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup(database: str = "lookfirst_bench") -> None:
    for path in (str(ROOT), str(ROOT / "platform")):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/{database}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("LOOKFIRST_HOME", f"/tmp/lookfirst-bench-{database}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookfirst.settings.base")
    from lookfirst.env import parse_database_url

    url = parse_database_url(os.environ["DATABASE_URL"])
    if url.host.startswith("127.") or url.host == "localhost":
        subprocess.run(["createdb", "-h", url.host, "-p", url.port or "5432", "-U", url.user or "postgres", url.name],
                       capture_output=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "unknown"
