"""An admin launches a staged job from the UI, watches it run on a real training worker, and compares jobs."""
from __future__ import annotations

import pytest

from lookfirst.pools.models import Item
from lookfirst.snapshots.services import snapshot_create
from lookfirst.training import services
from lookfirst.training.models import TrainingJob
from tests.browser.conftest import login, shot
from tests.scoring.conftest import make_pool
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_admin_launches_watches_and_compares(live_server, new_page, admin_user, curator, tmp_path):
    from workers.models.tiny import tiny_vlm

    pool, items = make_pool(tmp_path, "ui-train", [(f"How many squares {i}?", str(i % 4)) for i in range(30)])
    for i, item in enumerate(items):
        Item.objects.filter(pk=item.pk).update(bucket="easy" if i % 2 else "medium", pass_rate=0.5)
    snapshot = snapshot_create(user=curator, pool=pool, name="ui")
    model = tiny_vlm(tmp_path / "tiny")
    worker = WorkerProcess(queues="training").start()
    try:
        page = new_page()
        login(page, live_server, admin_user.username)
        page.goto(f"{live_server.url}/training/")
        page.select_option("#launch-form select[name=snapshot]", str(snapshot.pk))
        page.select_option("#launch-form select[name=recipe]", "pebr-2stage")
        page.fill("#launch-form input[name=model_spec]", str(model))
        page.fill("#launch-form input[name=clip_spec]", "")
        page.fill("#launch-form input[name=config_name]", "cpu-tiny.yaml")
        page.click("#launch-form button[type=submit]")
        page.wait_for_selector("#job-live")
        launched = TrainingJob.objects.get()
        assert (launched.recipe, launched.created_by, launched.config_name) == ("pebr-2stage", admin_user, "cpu-tiny.yaml")
        merged = services.training_job_create(user=admin_user, snapshot=snapshot, recipe="merged",
                                              model_spec=str(model), config_name="cpu-tiny.yaml")
        # The page polls itself: the live block shows the finished stages without a reload.
        try:
            page.wait_for_selector("#job-live .badge.state-done", timeout=240_000)
        except Exception:
            launched.refresh_from_db()
            raise AssertionError(f"{launched.state} {launched.error} {launched.log_tail[-2000:]} {worker.output()[-3000:]}")
        assert page.locator("#stages tr").count() == 3  # header + perception + reasoning
        assert "reward/keyword" in page.locator("#job-live").inner_text()
        shot(page, "11-training-job")

        def merged_done():
            merged.refresh_from_db()
            return merged.state in ("done", "failed")

        wait_for(merged_done, timeout=300, interval=1, worker=worker)
        assert merged.state == "done", merged.error
        page.goto(f"{live_server.url}/training/compare/?jobs={launched.pk},{merged.pk}")
        text = page.content()
        assert f"#{launched.pk} pebr-2stage" in text and f"#{merged.pk} merged" in text
        assert page.locator("svg.chart").count() == 3
        shot(page, "12-training-compare")
    finally:
        worker.stop()
