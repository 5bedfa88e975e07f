from __future__ import annotations

import pytest
from django.test import Client

from lookfirst.api.services import api_token_create
from lookfirst.scoring import services as scoring
from lookfirst.snapshots import services as snapshots
from tests.snapshots.conftest import curated_pool


def token_client(user) -> Client:
    _, raw = api_token_create(user=user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture(autouse=True)
def _export_root(settings, tmp_path):
    settings.LOOKFIRST_EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def world(db, tmp_path):
    """A curated pool with a scoring run, two snapshots and a finished export."""
    pool, items = curated_pool(tmp_path, "apipool")
    run = scoring.scoring_run_create(user=None, pool=pool, model_spec="openai:http://127.0.0.1:9/v1#m",
                                     enqueue=False)
    first = snapshots.snapshot_create(user=None, pool=pool, name="first")
    second = snapshots.snapshot_create(user=None, pool=pool, name="second", parent=first)
    created = snapshots.export_create(user=None, snapshot=first, fmt="easyr1", rule="pebr-2stage", enqueue=False)
    export = snapshots.export_execute(export_id=created.pk)
    assert export.state == "done"
    return {"pool": pool, "items": items, "run": run, "first": first, "second": second, "export": export}
