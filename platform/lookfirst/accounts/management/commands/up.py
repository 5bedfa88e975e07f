"""Start the whole product: database and broker (embedded unless configured), web server and workers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from lookfirst import env
from lookfirst.accounts.services import admin_ensure

ROOT = Path(__file__).resolve().parents[5]


def child_env() -> dict[str, str]:
    """The environment for web and worker processes: the services' URLs are fixed, so they start nothing."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "platform"), environ.get("PYTHONPATH", "")])
    return environ


class Command(BaseCommand):
    help = "Run web server + Celery worker(s) (+ embedded PostgreSQL/Redis when not configured). Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=env.text("LOOKFIRST_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=env.integer("LOOKFIRST_PORT", 8000))
        parser.add_argument("--concurrency", type=int, default=1, help="worker processes per queue group")
        parser.add_argument("--no-worker", action="store_true", help="serve the web UI only")

    def handle(self, *args, host, port, concurrency, no_worker, **options):
        call_command("migrate", interactive=False, verbosity=0)
        username, password = admin_ensure(credentials_file=settings.LOOKFIRST_HOME / "admin.json")
        environ = child_env()
        python = sys.executable
        processes: list[subprocess.Popen] = [
            subprocess.Popen([python, "-m", "waitress", f"--listen={host}:{port}", "--threads=8",
                              "lookfirst.wsgi:application"], env=environ, cwd=ROOT),
        ]
        if not no_worker:
            # One worker for ingest/scoring/exports, one for training, so a long GRPO job never blocks curation.
            for name, queues in (("main", "cpu,gpu"), ("training", "training")):
                processes.append(subprocess.Popen(
                    [python, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues,
                     f"--concurrency={concurrency}", "--without-mingle", "--without-gossip", "-l", "warning",
                     "-n", f"lookfirst-{name}-{os.getpid()}@%h"], env=environ, cwd=ROOT))
        stop = _Stopper(processes)
        signal.signal(signal.SIGTERM, stop.on_signal)
        signal.signal(signal.SIGINT, stop.on_signal)
        url = f"http://{host}:{port}/"
        try:
            _wait_http(url + "healthz", processes[0])
            self.stdout.write(self.style.SUCCESS(f"LookFirst is up at {url}"))
            self.stdout.write(f"Log in as {username} / {password or '(password set earlier; see manage.py changepassword)'}")
            self.stdout.write("Press Ctrl-C to stop everything.")
            while not stop.requested:
                for process in processes:
                    if process.poll() is not None and not stop.requested:
                        raise CommandError(f"{process.args[2]} exited with code {process.returncode}")
                time.sleep(0.5)
        finally:
            stop.stop_all()
            self.stdout.write("Stopped web server and workers.")


class _Stopper:
    def __init__(self, processes: list[subprocess.Popen]) -> None:
        self.processes = processes
        self.requested = False

    def on_signal(self, signum, frame) -> None:
        self.requested = True

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError("the web server exited while starting")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"the web server did not answer {url} within {timeout:.0f}s")
