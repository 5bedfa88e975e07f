from __future__ import annotations

from celery import shared_task

from lookfirst.ingest import services


@shared_task(name="workers.tasks.ingest.run", acks_late=True)
def ingest_run(run_id: int) -> dict:
    """Ingest an uploaded or server-side source. Re-running restarts the run; duplicates are not inserted."""
    run = services.ingest_run_execute(run_id=run_id)
    return {"run": run.pk, "state": run.state, "ingested": run.ingested}
