from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from lookfirst.ingest.models import IngestRun
from lookfirst.pools.models import Item, Pool
from tests.ingest import format_samples
from tests.worker import WorkerProcess, wait_for


def _upload_file(path):
    return SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/octet-stream")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_curator_upload_is_ingested_by_a_real_worker(client, curator, tmp_path, settings):
    path = format_samples.write_folder_zip_sample(tmp_path)  # a .zip of images with a metadata file
    client.force_login(curator)
    worker = WorkerProcess(queues="cpu").start()
    try:
        response = client.post(reverse("ingest:upload"), {"pool": "uploaded", "format": "auto", "file": _upload_file(path)})
        run = IngestRun.objects.get()
        assert response.status_code == 302 and response.url == reverse("ingest:run", args=[run.pk])

        def done():
            run.refresh_from_db()
            return run.state in ("done", "failed")

        wait_for(done, timeout=90, worker=worker)
    finally:
        worker.stop()
    assert (run.state, run.format, run.ingested, run.skipped, run.created_by) == ("done", "folder", 3, 0, curator)
    assert Item.objects.filter(pool__name="uploaded").count() == 3
    status = client.get(reverse("ingest:run_status", args=[run.pk])).json()
    assert (status["state"], status["ingested"], status["progress"]) == ("done", 3, 1.0)


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_and_nothing_is_created(client, curator, settings, tmp_path):
    settings.LOOKFIRST_MAX_UPLOAD_BYTES = 1000
    client.force_login(curator)
    big = SimpleUploadedFile("big.jsonl", b"x" * 5000)

    response = client.post(reverse("ingest:upload"), {"pool": "big", "format": "auto", "file": big})

    assert response.status_code == 413
    assert (Pool.objects.count(), IngestRun.objects.count()) == (0, 0)
    assert not settings.UPLOAD_ROOT.exists() or not any(settings.UPLOAD_ROOT.iterdir())


@pytest.mark.django_db
def test_viewer_cannot_upload_and_nothing_is_created(client, viewer, tmp_path, settings):
    path = format_samples.write_easyr1_sample(tmp_path)
    client.force_login(viewer)

    response = client.post(reverse("ingest:upload"), {"pool": "v", "format": "auto", "file": _upload_file(path)})

    assert response.status_code == 403
    assert (Pool.objects.count(), IngestRun.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_anonymous_is_sent_to_log_in_everywhere(client):
    for url in [reverse("pools:list"), reverse("ingest:run", args=[1]), "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.url, url
    response = client.post(reverse("ingest:upload"), {})
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert IngestRun.objects.count() == 0


@pytest.mark.django_db
def test_upload_needs_a_csrf_token(curator, tmp_path):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(curator)
    path = format_samples.write_easyr1_sample(tmp_path)

    response = client.post(reverse("ingest:upload"), {"pool": "c", "format": "auto", "file": _upload_file(path)})

    assert response.status_code == 403
    assert IngestRun.objects.count() == 0


@pytest.mark.django_db
def test_pool_pages_show_ingested_items(client, viewer, tmp_path):
    from lookfirst.ingest import services

    services.ingest_path(user=None, pool_name="shown", path=format_samples.write_easyr1_sample(tmp_path))
    client.force_login(viewer)

    listing = client.get(reverse("pools:list")).content.decode()
    detail = client.get(reverse("curation:browser", args=["shown"])).content.decode()

    assert "shown" in listing and "Upload and ingest" not in listing  # viewers get no upload form
    item = Item.objects.filter(pool__name="shown").order_by("id").first()
    assert item.question.replace("<image>", "") .strip()[:20] in detail.replace("&lt;image&gt;", "")
    image = client.get(reverse("pools:image", args=[item.image_shas[0]]))
    assert image.status_code == 200 and b"".join(image.streaming_content)[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
