from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from lookfirst.api.models import ApiToken
from lookfirst.scoring.models import ScoringRun
from lookfirst.snapshots import services as snapshots
from lookfirst.snapshots.models import Export, Snapshot
from tests.api.conftest import token_client
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_api_token_command_prints_the_token_once_and_stores_its_hash(curator):
    out = io.StringIO()
    call_command("api_token", "create", curator.username, "--name", "trainer", stdout=out)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert raw.startswith("lf_") and len(raw) > 40 and token.user == curator and token.name == "trainer"
    assert raw not in (token.token_hash, token.prefix) and token.prefix == raw[:10]
    assert token.last_used_at is None
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/pools")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    with pytest.raises(CommandError, match="no user named"):
        call_command("api_token", "create", "ghost", stdout=io.StringIO())


def test_a_token_opens_the_api_only(curator):
    client = token_client(curator)
    assert client.get("/api/pools").status_code == 200
    assert client.get("/").status_code == 302  # pages still need a session log-in


def test_session_auth_works_and_is_csrf_checked(world, curator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(curator)
    assert browser.get("/api/snapshots").status_code == 200
    refused = post(browser, "/api/snapshots", {"pool": "apipool", "name": "no csrf"})
    assert refused.status_code == 403
    assert Snapshot.objects.count() == 2
    # A bearer token is not a cookie: no CSRF token needed.
    from lookfirst.api.services import api_token_create

    _, raw = api_token_create(user=curator)
    script = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert post(script, "/api/snapshots", {"pool": "apipool", "name": "scripted"}).status_code == 201


def test_pools_and_keyset_pages_of_items(world, viewer):
    client = token_client(viewer)
    pools = client.get("/api/pools").json()
    assert [(p["name"], p["item_count"], p["excluded_count"]) for p in pools] == [("apipool", 11, 1)]
    detail = client.get("/api/pools/apipool").json()
    assert detail["buckets"] == {"easy": 3, "hard": 1, "medium": 6, "unscored": 1}
    assert detail["answer_types"] == {"free_text": 10, "none": 1}

    seen, cursor = [], None
    while True:
        page = client.get("/api/pools/apipool/items", {"bucket": "medium", "sort": "-pass_rate", "size": 4,
                                                        **({"after": cursor} if cursor else {})}).json()
        seen += [(item["id"], item["pass_rate"]) for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert [rate for _, rate in seen] == [0.875, 0.75, 0.625, 0.5, 0.375, 0.25]
    item = client.get(f"/api/items/{seen[0][0]}").json()
    assert (item["pool"], item["bucket"], item["n_samples"]) == ("apipool", "medium", 8)

    bad = client.get("/api/pools/apipool/items", {"pass_min": "lots"})
    assert bad.status_code == 422
    bad = client.get("/api/pools/apipool/items", {"bucket": "trivial"})
    assert (bad.status_code, bad.json()) == (400, {"detail": "bucket: unknown value 'trivial'; known: unscored, "
                                                             "easy, medium, hard"})
    assert client.get("/api/pools/nope").status_code == 404
    assert client.get("/api/items/999999999").status_code == 404
    assert client.get("/api/pools/apipool/items", {"q": "a\x00b"}).status_code == 422


def test_scoring_runs_through_the_api(world, curator):
    client = token_client(curator)
    created = post(client, "/api/scoring-runs", {"pool": "apipool", "model_spec": "openai:http://127.0.0.1:9/v1#m",
                                                 "n_samples": 4, "policy": "capcurriculum"})
    assert created.status_code == 201
    body = created.json()
    assert (body["pool"], body["n_samples"], body["policy"], body["state"], body["total"]) == (
        "apipool", 4, "capcurriculum", "queued", 11)
    assert body["created_by"] == curator.username
    assert client.get(f"/api/scoring-runs/{body['id']}").json() == body
    for bad, message in (({"policy": "nope"}, "unknown policy"), ({"model_spec": "not a spec!"}, "")):
        response = post(client, "/api/scoring-runs", {"pool": "apipool", "model_spec": "openai:http://x/v1#m", **bad})
        assert response.status_code == 400 and message in response.json()["detail"]
    assert ScoringRun.objects.count() == 2


def test_snapshots_diffs_and_exports_through_the_api(world, curator):
    client = token_client(curator)
    first, second = world["first"], world["second"]
    made = post(client, "/api/snapshots", {"pool": "apipool", "name": "third", "parent": second.pk,
                                           "description": "from the API"})
    assert made.status_code == 201
    third = made.json()
    assert (third["version"], third["parent"], third["item_count"], third["created_by"]) == (
        3, second.pk, 12, curator.username)
    assert third["manifest_hash"] == Snapshot.objects.get(pk=third["id"]).manifest_hash
    assert [s["version"] for s in client.get("/api/snapshots", {"pool": "apipool"}).json()] == [3, 2, 1]
    diff = client.get(f"/api/snapshots/{first.pk}/diff/{second.pk}").json()
    assert diff == snapshots.snapshot_diff(a=first, b=second).as_dict()
    assert post(client, "/api/snapshots", {"pool": "apipool", "name": "x", "parent": 999999}).status_code == 404

    queued = post(client, "/api/exports", {"snapshot": third["id"], "format": "verl", "rule": "capcurriculum-3stage",
                                           "eval_fraction": 0.2})
    assert queued.status_code == 201
    export_id = queued.json()["id"]
    assert client.get(f"/api/exports/{export_id}").json()["state"] == "queued"
    assert client.get(f"/api/exports/{export_id}/download").status_code == 409
    snapshots.export_execute(export_id=export_id)  # what the worker does
    polled = client.get(f"/api/exports/{export_id}").json()
    assert (polled["state"], polled["progress"], polled["total"]) == ("done", 9, 9)
    assert polled["manifest"]["stages"] == ["perception", "textual_reasoning", "visual_reasoning"]
    bad = post(client, "/api/exports", {"snapshot": third["id"], "format": "trl", "file_type": "jsonl"})
    assert bad.status_code == 400 and "parquet" in bad.json()["detail"]


def test_downloads_as_zip_and_by_name(world, viewer):
    client = token_client(viewer)
    export = world["export"]
    out = Path(export.out_dir)
    response = client.get(f"/api/exports/{export.pk}/download")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = sorted(archive.namelist())
    assert names == sorted(["manifest.json", *export.manifest["files"]])
    for name in names:
        assert archive.read(name) == (out / name).read_bytes()

    image = next(name for name in export.manifest["files"] if name.startswith("images/"))
    for name in ("perception.jsonl", image, "manifest.json"):
        got = client.get(f"/api/exports/{export.pk}/files/{name}")
        assert got.status_code == 200 and b"".join(got.streaming_content) == (out / name).read_bytes()
    for name in ("../../etc/passwd", "nothing.parquet", "images"):
        assert client.get(f"/api/exports/{export.pk}/files/{name}").status_code == 404


def test_openapi_schema_and_offline_docs(world, viewer):
    client = Client()
    client.force_login(viewer)
    schema = client.get("/api/openapi.json").json()
    assert {"/api/pools", "/api/pools/{name}/items", "/api/scoring-runs", "/api/snapshots",
            "/api/snapshots/{a}/diff/{b}", "/api/exports", "/api/exports/{export_id}/download",
            "/api/exports/{export_id}/files/{name}"} <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"BearerToken", "SessionAuth"}
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3, html
    assert "/static/ninja/swagger-ui-bundle.js" in assets
    assert not [url for url in assets if "//" in url or "cdn" in url]  # nothing from another host
    for url in assets:
        assert Client().get(url).status_code == 200, url
    assert Client().get("/api/openapi.json").status_code == 401


def test_writes_by_a_user_who_lost_the_role_are_refused(world):
    user = user_with_role("curator")
    client = token_client(user)
    user.groups.clear()
    assert post(client, "/api/exports", {"snapshot": world["first"].pk, "format": "trl"}).status_code == 403
    assert Export.objects.count() == 1
