"""Queueing work for the Celery workers from the web side, by task name (the web never imports task code)."""
from __future__ import annotations


def send_task(name: str, *args, queue: str) -> None:
    """Send task `name` to `queue`. Callers wrap it in `transaction.on_commit` so workers see committed rows."""
    from workers.app import app

    app.send_task(name, args=list(args), queue=queue)
