from __future__ import annotations

from celery import shared_task

from lookfirst.training import services


@shared_task(name="workers.tasks.training.run", acks_late=True)
def run(job_id: int, resume: bool = False) -> str:
    """Run one staged GRPO job to its end (or cancellation); its progress is followed into the database."""
    return services.training_job_execute(job_id=job_id, resume=resume).state
