"""Every endpoint for every role, with exact status codes; refusals change nothing."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from lookfirst.scoring.models import ScoringRun
from lookfirst.snapshots.models import Export, Snapshot, SnapshotItem
from tests.api.conftest import token_client
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def endpoints(w) -> list[tuple[str, str, dict | None]]:
    item, export = w["items"][0], w["export"]
    return [
        ("get", "/api/pools", None),
        ("get", "/api/pools/apipool", None),
        ("get", "/api/pools/apipool/items?bucket=easy,medium&sort=-pass_rate&size=3", None),
        ("get", f"/api/items/{item.pk}", None),
        ("get", "/api/scoring-runs?pool=apipool", None),
        ("get", f"/api/scoring-runs/{w['run'].pk}", None),
        ("post", "/api/scoring-runs", {"pool": "apipool", "model_spec": "openai:http://127.0.0.1:9/v1#m",
                                       "n_samples": 4}),
        ("get", "/api/snapshots?pool=apipool", None),
        ("post", "/api/snapshots", {"pool": "apipool", "name": "via api", "parent": w["second"].pk}),
        ("get", f"/api/snapshots/{w['first'].pk}", None),
        ("get", f"/api/snapshots/{w['first'].pk}/diff/{w['second'].pk}", None),
        ("get", f"/api/exports?snapshot={w['first'].pk}", None),
        ("post", "/api/exports", {"snapshot": w["first"].pk, "format": "trl", "rule": "merged"}),
        ("get", f"/api/exports/{export.pk}", None),
        ("get", f"/api/exports/{export.pk}/download", None),
        ("get", f"/api/exports/{export.pk}/files/perception.jsonl", None),
    ]


def call(client: Client, method: str, path: str, body: dict | None):
    if method == "post":
        return client.post(path, data=json.dumps(body), content_type="application/json")
    return client.get(path)


def counts() -> tuple[int, ...]:
    return (ScoringRun.objects.count(), Snapshot.objects.count(), SnapshotItem.objects.count(),
            Export.objects.count())


EXPECTED = {
    # role: (status of reads, status of writes)
    "anonymous": (401, 401),
    "no role": (403, 403),
    "viewer": (200, 403),
    "curator": (200, 201),
    "admin": (200, 201),
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_permission_matrix(world, role):
    if role == "anonymous":
        client = Client()
    elif role == "no role":
        user = user_with_role("viewer")
        user.groups.clear()
        client = token_client(user)
    else:
        client = token_client(user_with_role(role))
    read, write = EXPECTED[role]
    for method, path, body in endpoints(world):
        before = counts()
        response = call(client, method, path, body)
        expected = write if method == "post" else read
        assert response.status_code == expected, (role, method, path, response.content[:300])
        if expected >= 400:
            assert counts() == before, (role, path)
            assert response["Content-Type"].startswith("application/json")
            assert "detail" in response.json()
    if write == 201:  # each write created exactly one record (the snapshot with its 12 rows)
        assert counts() == (2, 3, 36, 2)


def test_a_bad_or_missing_token_is_refused_before_the_view(world):
    for header in ("Bearer lf_not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "lf_plain"):
        response = Client(HTTP_AUTHORIZATION=header).get("/api/pools")
        assert (response.status_code, response.json()) == (401, {"detail": "authentication required"})
    inactive = user_with_role("admin")
    client = token_client(inactive)
    inactive.is_active = False
    inactive.save()
    assert client.get("/api/pools").status_code == 401
