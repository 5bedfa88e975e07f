"""The embedded default: no DATABASE_URL / REDIS_URL -> real servers started under LOOKFIRST_HOME, then stopped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookfirst import env
from tests.ingest import format_samples

ROOT = Path(__file__).resolve().parents[2]


def test_parse_database_url_handles_tcp_and_sockets():
    tcp = env.parse_database_url("postgresql://u:p%40ss@db.example:6543/name")
    sock = env.parse_database_url("postgresql://postgres:@/lookfirst?host=/tmp/x&port=5433")
    assert (tcp.user, tcp.password, tcp.host, tcp.port, tcp.name) == ("u", "p@ss", "db.example", "6543", "name")
    assert (sock.host, sock.port, sock.name) == ("/tmp/x", "5433", "lookfirst")
    with pytest.raises(ValueError, match="postgresql://"):
        env.parse_database_url("mysql://x/y")


@pytest.mark.slow
def test_ingest_on_embedded_servers_from_an_empty_home_then_everything_stops(tmp_path):
    home = tmp_path / "home"  # does not exist yet
    data = format_samples.write_easyr1_sample(tmp_path / "data")
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    environ["LOOKFIRST_HOME"] = str(home)

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ, capture_output=True,
                              text=True, timeout=240)

    migrate = manage("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    first = manage("ingest", "emb", str(data), "--json")
    second = manage("ingest", "emb", str(data), "--json")

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["ingested"] == 3
    assert (json.loads(second.stdout)["ingested"], json.loads(second.stdout)["duplicates"]) == (0, 3)  # data kept
    assert (home / "pg" / "PG_VERSION").exists()
    assert not (home / "pg" / "postmaster.pid").exists(), "PostgreSQL still running after the command exited"
    assert not (home / "redis" / "server.json").exists(), "Redis still running after the command exited"
    assert json.loads((home / "redis" / "handles.json").read_text()) == []
