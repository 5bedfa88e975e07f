"""A real Label Studio server for the session, from its own virtualenv (it pins its own Django)."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lookfirst.labelstudio import services
from tests.scoring.conftest import make_pool

LS_VERSION = "1.23.2"
VENV = Path(os.environ.get("LOOKFIRST_LABELSTUDIO_VENV") or Path.home() / ".cache/lookfirst/labelstudio-venv")
STAMP = VENV / f".installed-{LS_VERSION}"  # the same stamp `make labelstudio-venv` writes
TEMPLATE = VENV.parent / f"labelstudio-data-{LS_VERSION}"


def labelstudio_install() -> Path:
    """Install Label Studio into VENV once (minutes); later runs find the stamp. Safe under pytest-xdist."""
    if STAMP.exists():
        return VENV / "bin" / "label-studio"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f"{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not STAMP.exists():
            if not (VENV / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", f"label-studio=={LS_VERSION}"],
                           check=True, timeout=1800)
            STAMP.touch()
    return VENV / "bin" / "label-studio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabelStudioServer:
    url: str
    token: str
    username: str
    process: subprocess.Popen
    log: Path

    def client(self):
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.token)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _start(executable: Path, *, folder: Path, port: int, credentials: dict) -> subprocess.Popen:
    # A clean environment: none of our DJANGO_*/DATABASE_URL may leak into Label Studio's own Django.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LANG": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
        "LABEL_STUDIO_USERNAME": credentials["username"], "LABEL_STUDIO_PASSWORD": credentials["password"],
        "LABEL_STUDIO_USER_TOKEN": credentials["token"], "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
    }
    return subprocess.Popen(
        [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=folder, stdout=open(folder / "labelstudio.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)


def _wait(process: subprocess.Popen, url: str, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Label Studio did not answer on {url} in {timeout}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


def labelstudio_template(executable: Path) -> tuple[Path, dict]:
    """A migrated data folder whose first start created the admin and its token (22-70 s, once per machine).

    Each session starts on a fresh copy of it (about 5 s instead of the migrations).
    """
    marker = TEMPLATE / "credentials.json"
    if marker.exists():
        return TEMPLATE / "data", json.loads(marker.read_text())
    with open(VENV.parent / f"{TEMPLATE.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(TEMPLATE, ignore_errors=True)
            TEMPLATE.mkdir(parents=True)
            credentials = {"username": "admin@lookfirst.test", "password": secrets.token_urlsafe(12),
                           "token": secrets.token_hex(20)}
            port = _free_port()
            process = _start(executable, folder=TEMPLATE, port=port, credentials=credentials)
            try:
                _wait(process, f"http://127.0.0.1:{port}", TEMPLATE / "labelstudio.log")
            finally:
                _stop(process)
            marker.write_text(json.dumps(credentials))
    return TEMPLATE / "data", json.loads(marker.read_text())


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory):
    executable = labelstudio_install()
    template, credentials = labelstudio_template(executable)
    folder = tmp_path_factory.mktemp("labelstudio")
    shutil.copytree(template, folder / "data")
    port = _free_port()
    process = _start(executable, folder=folder, port=port, credentials=credentials)
    server = LabelStudioServer(url=f"http://127.0.0.1:{port}", token=credentials["token"],
                               username=credentials["username"], process=process, log=folder / "labelstudio.log")
    try:
        _wait(process, server.url, server.log)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def ls_client(labelstudio_server):
    return labelstudio_server.client()


@pytest.fixture
def connected(labelstudio_server, live_server, admin_user):
    """The saved connection: our real server, images served by Django's live server."""
    return services.labelstudio_connection_save(user=admin_user, url=labelstudio_server.url,
                                                token=labelstudio_server.token, lookfirst_url=live_server.url)


@pytest.fixture
def pool_items(tmp_path):
    """Five items: answers 1-4 and one unlabelled; item 0 and 1 scored medium with confidence 0.5."""
    from lookfirst.pools.models import Item

    pool, items = make_pool(tmp_path, "lspool", [("How many circles?", "1"), ("How many squares?", "2"),
                                                 ("How many sides?", "3"), ("Which colour?", "4"),
                                                 ("Is it round?", None)])
    Item.objects.filter(pk__in=[items[0].pk, items[1].pk]).update(bucket="medium", bucket_confidence=0.5,
                                                                  bucket_source="scored")
    Item.objects.filter(pk=items[2].pk).update(bucket="medium", bucket_confidence=0.9, bucket_source="scored")
    return pool, [Item.objects.get(pk=i.pk) for i in items]
