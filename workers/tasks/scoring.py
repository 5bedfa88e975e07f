from __future__ import annotations

from celery import shared_task

from lookfirst.scoring import services


@shared_task(name="workers.tasks.scoring.dispatch", acks_late=True)
def dispatch(run_id: int) -> int:
    """Split a run into chunks and queue them on the gpu queue. Re-running re-queues; chunks skip done items."""
    return services.scoring_run_dispatch(run_id=run_id)


@shared_task(name="workers.tasks.scoring.chunk", acks_late=True)
def chunk(run_id: int, item_ids: list[int]) -> int:
    """Score one chunk. Idempotent per (run, item): a redelivered chunk writes only what is missing."""
    return services.scoring_chunk_execute(run_id=run_id, item_ids=item_ids)
