from __future__ import annotations

from celery import shared_task

from lookfirst.snapshots import services


@shared_task(name="workers.tasks.exports.run", acks_late=True)
def export_run(export_id: int) -> dict:
    """Write one export. Re-running restarts a partial export and leaves a finished one alone."""
    export = services.export_execute(export_id=export_id)
    return {"export": export.pk, "state": export.state, "rows": export.progress}
