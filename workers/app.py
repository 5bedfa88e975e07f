"""The Celery application. Start a worker with:

    celery -A workers.app worker -Q cpu,gpu -l info

Queues: `cpu` (ingest, exports, bulk edits), `gpu` (model sampling and embeddings),
`training` (one GRPO job at a time). Tasks take ids and call one service.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "platform")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookfirst.settings.base")

from lookfirst.runtime.services import ensure_services  # noqa: E402

ensure_services()

import django  # noqa: E402
from celery import Celery  # noqa: E402

django.setup()

app = Celery("lookfirst")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks.ingest", "workers.tasks.scoring", "workers.tasks.curation", "workers.tasks.labelstudio", "workers.tasks.exports",
                    "workers.tasks.training")
