"""No Docker engine runs here: validate the compose file and Dockerfiles structurally."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_defines_the_full_stack_with_healthy_dependencies():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "trainer"}
    for name in ("web", "worker", "trainer"):
        service = services[name]
        assert (DOCKER.parent / service["build"]["dockerfile"]).exists()
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://lookfirst:${POSTGRES_PASSWORD")
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert services["web"]["ports"] == ["8000:8000"]


def test_no_secret_is_committed_in_docker_files():
    for path in DOCKER.iterdir():
        text = path.read_text()
        assert not re.search(r"(PASSWORD|SECRET_KEY)\s*[:=]\s*[\"']?[A-Za-z0-9]{6,}", text), path


def test_dockerfiles_put_platform_on_the_path_and_install_from_the_lock():
    for name in ("web", "worker", "trainer"):
        text = (DOCKER / f"Dockerfile.{name}").read_text()
        assert "PYTHONPATH=/app:/app/platform" in text
        assert "-c requirements.lock" in text
