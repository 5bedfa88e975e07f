from __future__ import annotations

from celery import shared_task

from lookfirst.labelstudio import services


@shared_task(name="workers.tasks.labelstudio.run", acks_late=True)
def run(job_id: int) -> dict:
    """Run a push or pull started from the UI. Both are idempotent: a redelivered job changes nothing new."""
    job = services.labelstudio_job_execute(job_id=job_id)
    return {"job": job.pk, "state": job.state}
