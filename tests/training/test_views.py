from __future__ import annotations

import pytest
from django.urls import reverse

from lookfirst.snapshots.services import snapshot_create
from lookfirst.training.models import TrainingJob
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role, status", [("viewer", 403), ("curator", 403)])
def test_only_admins_launch_from_the_ui(role, status, client, viewer, curator, tmp_path):
    pool, _ = make_pool(tmp_path, "v", [("Q?", "1")])
    snapshot = snapshot_create(user=curator, pool=pool, name="v1")
    client.force_login({"viewer": viewer, "curator": curator}[role])
    assert client.get(reverse("training:list")).status_code == 200  # everyone logged in may look
    response = client.post(reverse("training:list"), {
        "snapshot": snapshot.pk, "recipe": "merged", "model_spec": "lookfirst:shapes-vlm",
        "config_name": "cpu-tiny.yaml", "overrides": "{}"})
    assert response.status_code == status
    assert TrainingJob.objects.count() == 0


def test_admin_launch_form_queues_a_job(client, admin_user, curator, tmp_path, django_capture_on_commit_callbacks):
    pool, _ = make_pool(tmp_path, "a", [("Q?", "1")])
    snapshot = snapshot_create(user=curator, pool=pool, name="v1")
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("training:list"), {
            "snapshot": snapshot.pk, "recipe": "merged", "model_spec": "lookfirst:shapes-vlm",
            "clip_spec": "", "config_name": "cpu-tiny.yaml", "overrides": '{"max_steps": 3}'})
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:job", args=[job.pk])
    assert (job.recipe, job.overrides, job.created_by, job.state) == ("merged", {"max_steps": 3}, admin_user, "queued")
    assert len(callbacks) == 1  # queued on the training queue after commit
