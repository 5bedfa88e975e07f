from __future__ import annotations

import pytest
from django.urls import reverse

from lookfirst.curation.models import AuditEntry, BulkJob
from lookfirst.ingest.models import IngestRun
from lookfirst.pools.models import Item
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path):
    pool, items = make_pool(tmp_path, "views", [(f"Question {i}?", str(i)) for i in range(6)])
    for i, item in enumerate(items):
        Item.objects.filter(pk=item.pk).update(bucket=("easy", "medium", "hard")[i % 3], pass_rate=i / 6,
                                               n_correct=i, n_samples=6, bucket_confidence=0.5)
    return pool, [Item.objects.get(pk=i.pk) for i in items]


def _state():
    return (list(Item.objects.order_by("id").values_list("bucket", "answer", "excluded", "reviewed", "version")),
            AuditEntry.objects.count(), BulkJob.objects.count(), IngestRun.objects.count())


def _pages(pool, item):
    return {
        "pools": reverse("pools:list"),
        "dashboard": reverse("pools:detail", args=[pool.name]),
        "browser": reverse("curation:browser", args=[pool.name]),
        "item": reverse("curation:item", args=[item.pk]),
        "review": reverse("curation:review", args=[pool.name]),
        "image": reverse("pools:image", args=[item.image_shas[0]]),
        "settings": reverse("curation:settings"),
        "admin": "/admin/",
    }


def _actions(pool, item):
    return {
        "edit": (reverse("curation:edit", args=[item.pk]), {"version": item.version, "bucket": "hard"}),
        "review": (reverse("curation:review", args=[pool.name]),
                   {"item": item.pk, "version": item.version, "decision": "easy"}),
        "bulk": (reverse("curation:bulk", args=[pool.name]), {"item": [item.pk], "bucket": "medium"}),
        "upload": (reverse("ingest:upload"), {"pool": "x", "format": "auto"}),
    }


READ_ONLY = {"settings", "admin"}


@pytest.mark.parametrize("role", ["anonymous", "viewer", "curator", "admin"])
def test_permission_matrix_pages(role, client, world, viewer, curator, admin_user):
    pool, items = world
    user = {"viewer": viewer, "curator": curator, "admin": admin_user}.get(role)
    if user:
        client.force_login(user)
    for name, url in _pages(pool, items[0]).items():
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/accounts/login/" in response.url, name
        elif name in READ_ONLY and role != "admin":
            assert response.status_code == 403, name
        else:
            assert response.status_code == 200, (name, response.status_code)


@pytest.mark.parametrize("role", ["anonymous", "viewer"])
def test_refused_actions_change_nothing(role, client, world, viewer):
    pool, items = world
    if role == "viewer":
        client.force_login(viewer)
    before = _state()
    for name, (url, data) in _actions(pool, items[0]).items():
        response = client.post(url, data)
        expected = 302 if role == "anonymous" else 403
        assert response.status_code == expected, (name, response.status_code)
    assert _state() == before


def test_curator_actions_are_applied_and_audited(client, world, curator):
    pool, items = world
    client.force_login(curator)
    edit_url, edit = _actions(pool, items[0])["edit"]
    assert client.post(edit_url, edit).status_code == 302
    review_url, review = _actions(pool, items[1])["review"]
    assert client.post(review_url, review).status_code == 302
    bulk_url, bulk = _actions(pool, items[2])["bulk"]
    assert client.post(bulk_url, bulk).status_code == 302
    got = {i.pk: i for i in Item.objects.all()}
    assert (got[items[0].pk].bucket, got[items[0].pk].version) == ("hard", 2)
    assert (got[items[1].pk].bucket, got[items[1].pk].reviewed) == ("easy", True)
    assert got[items[2].pk].bucket == "medium"
    assert list(AuditEntry.objects.order_by("id").values_list("source", flat=True)) == ["ui", "review", "bulk"]


def test_stale_edit_shows_the_conflict_and_writes_nothing(client, world, curator):
    pool, items = world
    client.force_login(curator)
    url = reverse("curation:edit", args=[items[0].pk])
    client.post(url, {"version": 1, "bucket": "hard"})
    before = _state()
    response = client.post(url, {"version": 1, "answer": "99"})
    assert response.status_code == 409
    assert b"was changed by" in response.content and b"hard" in response.content
    assert _state() == before


def test_review_queue_and_undo(client, world, curator):
    pool, items = world
    client.force_login(curator)
    url = reverse("curation:review", args=[pool.name]) + "?bucket=medium"
    page = client.get(url)
    assert page.context["item"].pk == items[1].pk and page.context["remaining"] == 2
    client.post(url, {"item": items[1].pk, "version": items[1].version, "decision": "hard"})
    assert client.get(url).context["item"].pk == items[4].pk
    client.post(url, {"decision": "undo"})
    item = Item.objects.get(pk=items[1].pk)
    assert (item.bucket, item.reviewed, item.version) == ("medium", False, 3)
    assert client.get(url).context["item"].pk == items[1].pk


def test_bad_filter_is_a_clear_400(client, world, viewer):
    pool, _ = world
    client.force_login(viewer)
    response = client.get(reverse("curation:browser", args=[pool.name]) + "?pass_min=abc")
    assert response.status_code == 400 and b"pass_min: expected a number" in response.content


def test_browser_and_detail_query_counts_do_not_grow_with_items(client, world, viewer, django_assert_max_num_queries):
    pool, items = world
    client.force_login(viewer)
    with django_assert_max_num_queries(8):
        client.get(reverse("curation:browser", args=[pool.name]) + "?sort=-pass_rate")
    with django_assert_max_num_queries(10):
        client.get(reverse("curation:item", args=[items[0].pk]))
    with django_assert_max_num_queries(14):
        client.get(reverse("pools:detail", args=[pool.name]))
