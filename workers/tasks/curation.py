from __future__ import annotations

from celery import shared_task

from lookfirst.curation import services


@shared_task(name="workers.tasks.curation.bulk", acks_late=True)
def bulk(job_id: int) -> None:
    """Apply a large bulk edit, each item audited; progress is written to the BulkJob row."""
    services.bulk_job_execute(job_id=job_id)
