from __future__ import annotations

import socket

import pytest
from django.core.exceptions import PermissionDenied

from lookfirst.labelstudio import services
from lookfirst.labelstudio.models import LabelStudioConnection

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_only_admins_store_the_connection_and_the_token_is_never_shown_in_full(curator, admin_user):
    with pytest.raises(PermissionDenied):
        services.labelstudio_connection_save(user=curator, url="http://ls:8080", token="secret-1234",
                                             lookfirst_url="http://lf:8000")
    assert not LabelStudioConnection.objects.exists()
    saved = services.labelstudio_connection_save(user=admin_user, url="http://ls:8080/", token="secret-1234",
                                                 lookfirst_url="http://lf:8000/")
    assert (saved.url, saved.lookfirst_url, saved.token_hint) == ("http://ls:8080", "http://lf:8000", "…1234")
    # An empty token keeps the stored one.
    services.labelstudio_connection_save(user=admin_user, url="http://ls:9090", token="", lookfirst_url="http://lf")
    assert LabelStudioConnection.objects.values_list("url", "token").get() == ("http://ls:9090", "secret-1234")
    with pytest.raises(services.LabelStudioError, match="must start with http"):
        services.labelstudio_connection_save(user=admin_user, url="ls:8080", token="x", lookfirst_url="http://lf")
    with pytest.raises(PermissionDenied):
        services.labelstudio_connection_test(user=curator)


def test_unreachable_server_is_reported(admin_user):
    url = f"http://127.0.0.1:{_closed_port()}"
    report = services.labelstudio_connection_test(user=admin_user, url=url, token="whatever")
    assert not report.ok and report.error.startswith(f"Label Studio at {url} is unreachable")
    assert services.labelstudio_connection_test(user=admin_user).error.startswith("not configured")


@pytest.mark.labelstudio
def test_connection_test_reports_version_and_user(admin_user, labelstudio_server):
    services.labelstudio_connection_save(user=admin_user, url=labelstudio_server.url, token=labelstudio_server.token,
                                         lookfirst_url="http://127.0.0.1:8000")
    report = services.labelstudio_connection_test(user=admin_user)
    assert report == services.ConnectionReport(ok=True, url=labelstudio_server.url, version="1.23.2",
                                               user=labelstudio_server.username)


@pytest.mark.labelstudio
def test_bad_token_is_reported(admin_user, labelstudio_server):
    report = services.labelstudio_connection_test(user=admin_user, url=labelstudio_server.url, token="0" * 40)
    assert not report.ok
    assert report.error == f"Label Studio at {labelstudio_server.url} refused the API token (401: Invalid token.)"
