from __future__ import annotations

import pytest

from lookfirst.labelstudio.models import LabelStudioJob, LabelStudioTask
from lookfirst.pools.models import Item
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.labelstudio, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_ui_push_and_pull_run_on_a_real_worker(connected, pool_items, client, curator, ls_client):
    pool, items = pool_items
    worker = WorkerProcess(queues="cpu").start()
    try:
        client.force_login(curator)
        client.post("/labelstudio/push/", {"pool": "lspool", "project": "worker", "items": f"{items[3].pk}"})
        job = LabelStudioJob.objects.get()
        wait_for(lambda: LabelStudioJob.objects.get(pk=job.pk).state in ("done", "failed"), worker=worker)
        job.refresh_from_db()
        assert (job.state, job.error, job.result["created"], job.done, job.total) == ("done", "", 1, 1, 1)
        assert "1 tasks created, 0 updated" in client.get(f"/labelstudio/jobs/{job.pk}/").content.decode()
        task = LabelStudioTask.objects.get(item=items[3])
        ls_client.annotations.create(id=task.ls_task_id, result=[
            {"from_name": "answer", "to_name": "question", "type": "textarea", "value": {"text": ["four"]}}])
        client.post(f"/labelstudio/projects/{task.project_id}/pull/")
        pull = LabelStudioJob.objects.get(kind="pull")
        wait_for(lambda: LabelStudioJob.objects.get(pk=pull.pk).state in ("done", "failed"), worker=worker)
        pull.refresh_from_db()
        assert (pull.state, pull.result["applied"]) == ("done", 1)
        assert Item.objects.get(pk=items[3].pk).answer == "four"
    finally:
        worker.stop()
