from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookfirst.snapshots import services
from lookfirst.snapshots.models import Export
from tests.snapshots.conftest import curated_pool
from tests.worker import WorkerProcess, wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_export_runs_on_a_cpu_worker_after_commit(tmp_path):
    pool, _ = curated_pool(tmp_path, "queued")
    snapshot = services.snapshot_create(user=None, pool=pool, name="for the worker")
    worker = WorkerProcess(queues="cpu").start()
    try:
        export = services.export_create(user=None, snapshot=snapshot, fmt="trl", rule="pebr-2stage",
                                        out_dir=tmp_path / "out")

        def finished():
            export.refresh_from_db()
            return export.state in (Export.State.DONE, Export.State.FAILED)

        wait_for(finished, timeout=60, worker=worker)
    finally:
        worker.stop()
    assert export.state == Export.State.DONE, export.error
    assert export.progress == export.total == 9
    assert json.loads(Path(tmp_path / "out" / "manifest.json").read_text()) == export.manifest
