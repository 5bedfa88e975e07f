"""An admin's job runs end to end on a real `training`-queue worker: export, two GRPO stages, followed live."""
from __future__ import annotations

import pytest

from lookfirst.pools.models import Item
from lookfirst.snapshots.services import snapshot_create
from lookfirst.training import selectors, services
from lookfirst.training.models import MetricPoint, TrainingJob
from tests.scoring.conftest import make_pool
from tests.worker import WorkerProcess, wait_for


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_pebr_two_stage_job_runs_on_a_worker_and_is_followed(tmp_path, admin_user, curator):
    from workers.models.tiny import tiny_vlm

    rows = [(f"How many circles {i}?", str(i % 3)) for i in range(10)]
    pool, items = make_pool(tmp_path, "trainme", rows)
    for i, item in enumerate(items):
        Item.objects.filter(pk=item.pk).update(bucket="easy" if i % 2 else "medium", pass_rate=0.5,
                                               key_words=["circle"])
    snapshot = snapshot_create(user=curator, pool=pool, name="v1")
    model = tiny_vlm(tmp_path / "tiny")
    worker = WorkerProcess(queues="training").start()
    try:
        job = services.training_job_create(user=admin_user, snapshot=snapshot, recipe="pebr-2stage",
                                           model_spec=str(model), config_name="cpu-tiny.yaml")

        def finished():
            job.refresh_from_db()
            return job.state in ("done", "failed", "cancelled")

        wait_for(finished, timeout=400, interval=1, worker=worker)
    finally:
        worker.stop()
    assert job.state == TrainingJob.State.DONE, job.error or job.log_tail
    stages = list(job.stages.order_by("order"))
    assert [(s.name, s.state, s.step) for s in stages] == [("perception", "done", 2), ("reasoning", "done", 2)]
    assert all(s.eval and "accuracy" in s.eval for s in stages)
    perception_keys = set(MetricPoint.objects.filter(stage=stages[0]).first().data)
    assert {"reward/clip", "reward/keyword", "reward/format", "reward/length", "reward", "kl", "grad_norm"} <= perception_keys
    reasoning_keys = set(MetricPoint.objects.filter(stage=stages[1]).first().data)
    assert {"reward/accuracy", "reward/format"} <= reasoning_keys
    curves = selectors.job_curves(job=job)
    assert [x for x, _ in curves["reward"]["perception"]] == [1, 2]
    assert [x for x, _ in curves["reward"]["reasoning"]] == [3, 4]
    assert job.summary["state"] == "done" and job.export.format == "trl"
