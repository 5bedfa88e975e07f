from __future__ import annotations

import pytest

from lookfirst.labelstudio import services
from lookfirst.labelstudio.models import LabelStudioConnection, LabelStudioJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(services, "send_task", lambda name, *args, queue: calls.append((name, *args, queue)))
    return calls


def test_settings_page_is_for_admins_and_never_shows_the_token(client, curator, admin_user):
    client.force_login(curator)
    assert client.get("/labelstudio/settings/").status_code == 403
    client.force_login(admin_user)
    response = client.post("/labelstudio/settings/", {"url": "http://ls.example:8080", "token": "tok-secret-9876",
                                                      "lookfirst_url": "http://lf.example", "action": "save"})
    assert response.status_code == 302
    page = client.get("/labelstudio/settings/").content.decode()
    assert "…9876" in page and "tok-secret-9876" not in page
    assert LabelStudioConnection.objects.get().token == "tok-secret-9876"


def test_settings_page_tests_the_connection(client, admin_user):
    client.force_login(admin_user)
    page = client.post("/labelstudio/settings/", {"url": "http://127.0.0.1:9", "token": "x",
                                                  "lookfirst_url": "http://lf.example", "action": "test"})
    assert "Connection failed: Label Studio at http://127.0.0.1:9 is unreachable" in page.content.decode()
    assert not LabelStudioConnection.objects.exists()


def test_push_and_pull_buttons_queue_jobs_after_commit(client, curator, admin_user, pool_items, sent,
                                                       django_capture_on_commit_callbacks):
    pool, _ = pool_items
    services.labelstudio_connection_save(user=admin_user, url="http://ls", token="t", lookfirst_url="http://lf")
    client.force_login(curator)
    assert client.get("/labelstudio/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/labelstudio/push/", {"pool": "lspool", "project": "ui",
                                                      "filter": "bucket=medium&conf_max=0.6"})
    job = LabelStudioJob.objects.get()
    assert response["Location"] == f"/labelstudio/jobs/{job.pk}/"
    assert (job.kind, job.project_name, job.pool, job.filter_params, job.user) == (
        "push", "ui", pool, {"bucket": "medium", "conf_max": "0.6"}, curator)
    assert sent == [("workers.tasks.labelstudio.run", job.pk, "cpu")]
    assert client.get(response["Location"]).status_code == 200

    response = client.post("/labelstudio/push/", {"pool": "lspool", "project": "ui", "filter": "bucket=trivial"})
    assert LabelStudioJob.objects.count() == 1 and len(sent) == 1


def test_curator_pages_refuse_viewers(client, viewer):
    client.force_login(viewer)
    assert client.get("/labelstudio/").status_code == 403
    assert client.post("/labelstudio/push/", {"pool": "x", "project": "y"}).status_code == 403
    assert not LabelStudioJob.objects.exists()


def test_project_page_lists_open_conflicts_and_a_curator_keeps_lookfirsts_values(client, curator, pool_items):
    from django.utils import timezone

    from lookfirst.labelstudio.models import (LabelStudioAnnotation, LabelStudioConflict, LabelStudioProject,
                                              LabelStudioTask)

    pool, items = pool_items
    project = LabelStudioProject.objects.create(name="p", pool=pool, ls_project_id=7, server_url="http://ls",
                                                label_config="<View/>")
    task = LabelStudioTask.objects.create(project=project, item=items[0], ls_task_id=70, item_version=1,
                                          synced_version=1, pushed_values={}, data={}, model_version="lookfirst",
                                          pushed_at=timezone.now())
    annotation = LabelStudioAnnotation.objects.create(project=project, task=task, ls_annotation_id=700,
                                                      annotator="ann@example.org", values={"bucket": "hard"},
                                                      outcome="conflict")
    conflict = LabelStudioConflict.objects.create(
        project=project, annotation=annotation, item=items[0], pushed_version=1, item_version=2,
        pushed_values={"bucket": "medium"}, current_values={"bucket": "easy"}, annotation_values={"bucket": "hard"})
    client.force_login(curator)
    page = client.get(f"/labelstudio/projects/{project.pk}/").content.decode()
    assert "Conflicts (1)" in page and "ann@example.org" in page and "annotation 700" in page
    response = client.post(f"/labelstudio/conflicts/{conflict.pk}/resolve/", {"take": "lookfirst", "version": "1"})
    assert response.status_code == 302
    conflict.refresh_from_db()
    assert (conflict.state, conflict.resolved_by) == ("kept_lookfirst", curator)
    assert "Conflicts (0)" in client.get(f"/labelstudio/projects/{project.pk}/").content.decode()
    assert items[0].audit.count() == 0
