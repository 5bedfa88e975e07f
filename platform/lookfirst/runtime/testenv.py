"""Which servers the test suite talks to: the machine's own when reachable, embedded ones otherwise."""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/lookfirst"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/13"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def configure() -> None:
    os.environ.setdefault("LOOKFIRST_HOME", str(Path(tempfile.gettempdir()) / f"lookfirst-test-{os.getuid()}"))
    if not os.environ.get("DATABASE_URL") and _reachable(5432):
        os.environ["DATABASE_URL"] = LOCAL_DATABASE_URL
    if not os.environ.get("REDIS_URL") and _reachable(6379):
        os.environ["REDIS_URL"] = LOCAL_REDIS_URL
    from lookfirst.runtime.services import ensure_services

    ensure_services()  # starts embedded servers only for what is still unset
