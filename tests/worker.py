"""A real Celery worker process for tests that need one (never eager mode)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, queues: str = "cpu", extra_env: dict | None = None) -> None:
        self.queues = queues
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None
        self.log = Path(settings.LOOKFIRST_HOME) / f"worker-{os.getpid()}-{time.monotonic_ns()}.log"

    def env(self) -> dict[str, str]:
        db = connection.settings_dict
        environ = dict(os.environ)
        host = db["HOST"]
        url = f"postgresql://{db['USER']}:{db['PASSWORD']}@/{db['NAME']}?host={host}"
        if db.get("PORT"):
            url += f"&port={db['PORT']}"
        environ.update({
            "DATABASE_URL": url,  # the test database, not the default one
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "DJANGO_SETTINGS_MODULE": "lookfirst.settings.test",
            "LOOKFIRST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
        })
        environ.update(self.extra_env)
        return environ

    def start(self) -> "WorkerProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", self.queues, "--pool=solo",
             "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "info",
             "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
            env=self.env(), cwd=ROOT, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def wait_for(predicate, timeout: float = 60, interval: float = 0.1, worker: WorkerProcess | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.output()[-4000:]}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s" + (f"\n{worker.output()[-4000:]}" if worker else ""))
