from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core import signing

from lookfirst.labelstudio.images import image_token_sign, image_url
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(tmp_path):
    _, items = make_pool(tmp_path, "imgpool", [("Q?", "1")])
    return items[0].images()[0]


def test_signed_link_serves_the_image_without_a_session_and_allows_any_origin(client, image):
    url = image_url(base_url="http://testserver", sha256=image.sha256)
    assert url.startswith("http://testserver/labelstudio/images/")
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == (Path(settings.MEDIA_ROOT) / image.relative_path).read_bytes()


def test_bad_and_expired_links_are_refused(client, image, monkeypatch):
    token = image_token_sign(sha256=image.sha256)
    assert client.get(f"/labelstudio/images/{token[:-2]}xx").status_code == 403
    forged = signing.dumps(image.sha256, salt="some.other.salt")
    assert client.get(f"/labelstudio/images/{forged}").status_code == 403
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 31 * 24 * 3600)
    old = image_token_sign(sha256=image.sha256)
    monkeypatch.undo()
    assert client.get(f"/labelstudio/images/{old}").status_code == 403
    assert client.get(f"/labelstudio/images/{image_token_sign(sha256='0' * 64)}").status_code == 404


def test_other_labelstudio_pages_still_need_a_log_in(client):
    response = client.get("/labelstudio/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
