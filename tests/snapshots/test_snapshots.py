from __future__ import annotations

import hashlib
import json

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction

from lookfirst.pools.models import Item
from lookfirst.snapshots import services
from lookfirst.snapshots.models import FROZEN_FIELDS, Snapshot, SnapshotItem
from tests.snapshots.conftest import curated_pool

pytestmark = pytest.mark.django_db


def _state(snapshot: Snapshot) -> tuple:
    row = Snapshot.objects.filter(pk=snapshot.pk).values().get()
    items = list(SnapshotItem.objects.filter(snapshot=snapshot).order_by("item_id").values())
    return row, items


def test_snapshot_freezes_every_field_with_a_verifiable_hash(pool_items, curator):
    pool, items = pool_items
    snapshot = services.snapshot_create(user=curator, pool=pool, name="first", description="baseline")

    assert (snapshot.version, snapshot.item_count, snapshot.parent, snapshot.created_by) == (1, 12, None, curator)
    assert snapshot.counts == {"kept": 11, "excluded": 1,
                               "buckets": {"easy": 3, "hard": 1, "medium": 6, "unscored": 1}}
    frozen = list(SnapshotItem.objects.filter(snapshot=snapshot).order_by("item_id").values(*FROZEN_FIELDS))
    live = list(Item.objects.filter(pool=pool).order_by("id").values("id", *FROZEN_FIELDS[1:]))
    assert frozen == [{"item_id": row.pop("id"), **row} for row in live]
    # The hash is sha256 over sorted-key compact JSON lines in item-id order: anyone can recompute it.
    lines = b"".join(json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                     for row in frozen)
    assert snapshot.manifest_hash == hashlib.sha256(lines).hexdigest()
    assert services.snapshot_verify(snapshot=snapshot)

    # Later curation changes the pool, never the snapshot.
    Item.objects.filter(pk=items[0].pk).update(bucket="hard", answer="changed")
    second = services.snapshot_create(user=curator, pool=pool, name="second", parent=snapshot)
    assert (second.version, second.parent_id) == (2, snapshot.pk)
    assert second.manifest_hash != snapshot.manifest_hash
    assert services.snapshot_verify(snapshot=snapshot)
    assert SnapshotItem.objects.get(snapshot=snapshot, item=items[0]).answer == "answer 0"


def test_versions_count_per_pool_and_parents_stay_in_their_pool(tmp_path, curator):
    first, _ = curated_pool(tmp_path, "one")
    other, _ = curated_pool(tmp_path, "two")
    a1 = services.snapshot_create(user=curator, pool=first, name="a")
    b1 = services.snapshot_create(user=curator, pool=other, name="b")
    a2 = services.snapshot_create(user=None, pool=first, name="a again")  # the command line
    assert [a1.version, b1.version, a2.version] == [1, 1, 2]
    with pytest.raises(services.SnapshotError, match="another pool"):
        services.snapshot_create(user=curator, pool=first, name="x", parent=b1)
    with pytest.raises(services.SnapshotError, match="a name"):
        services.snapshot_create(user=curator, pool=first, name="  ")
    assert Snapshot.objects.count() == 3


def test_viewers_cannot_snapshot(pool_items, viewer):
    pool, _ = pool_items
    with pytest.raises(PermissionDenied):
        services.snapshot_create(user=viewer, pool=pool, name="nope")
    assert (Snapshot.objects.count(), SnapshotItem.objects.count()) == (0, 0)


def _refused(action) -> None:
    with pytest.raises(IntegrityError, match="snapshots are immutable"):
        with transaction.atomic():
            action()


def test_no_client_can_change_or_delete_a_snapshot(pool_items, curator):
    pool, _ = pool_items
    snapshot = services.snapshot_create(user=curator, pool=pool, name="frozen")
    before = _state(snapshot)
    row = SnapshotItem.objects.filter(snapshot=snapshot).order_by("item_id").first()

    def orm_save():
        snapshot.name = "renamed"
        snapshot.save()

    def orm_save_item():
        row.bucket = "hard"
        row.save(update_fields=["bucket"])

    def bulk_update():
        rows = list(SnapshotItem.objects.filter(snapshot=snapshot))
        for r in rows:
            r.answer = "tampered"
        SnapshotItem.objects.bulk_update(rows, ["answer"])

    def raw(sql):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(sql, [snapshot.pk])
        return run

    refused = [
        orm_save, orm_save_item, bulk_update,
        lambda: Snapshot.objects.filter(pk=snapshot.pk).update(description="x"),
        lambda: SnapshotItem.objects.filter(snapshot=snapshot).update(bucket="easy"),
        lambda: SnapshotItem.objects.filter(snapshot=snapshot).delete(),
        lambda: Snapshot.objects.get(pk=snapshot.pk).delete(),
        raw("UPDATE snapshots_snapshot SET manifest_hash = 'x' WHERE id = %s"),
        raw("UPDATE snapshots_snapshotitem SET answer = 'x' WHERE snapshot_id = %s"),
        raw("DELETE FROM snapshots_snapshotitem WHERE snapshot_id = %s"),
        raw("DELETE FROM snapshots_snapshot WHERE id = %s"),
    ]
    for action in refused:
        _refused(action)

    assert _state(snapshot) == before
    assert services.snapshot_verify(snapshot=snapshot)


def test_diff_of_a_constructed_pair_is_exact(pool_items, curator):
    pool, items = pool_items
    a = services.snapshot_create(user=curator, pool=pool, name="a")
    Item.objects.filter(pk=items[0].pk).update(bucket="medium")  # changed: bucket
    Item.objects.filter(pk=items[3].pk).update(answer="new answer", key_words=["k1", "k2"])  # changed: two fields
    Item.objects.filter(pk=items[4].pk).update(excluded=True)  # removed
    Item.objects.filter(pk=items[10].pk).update(excluded=False)  # was excluded: added
    Item.objects.filter(pk=items[5].pk).update(clip_sim=0.9, tags=["x"])  # not a diff field: unchanged
    new = Item.objects.create(pool=pool, image_shas=items[0].image_shas, question="<image>A new one?", answer="1",
                              answer_type="number", source="manual", source_row=99, content_key="new-item",
                              bucket="easy")  # added
    b = services.snapshot_create(user=curator, pool=pool, name="b", parent=a)

    diff = services.snapshot_diff(a=a, b=b)
    assert diff.as_dict() == {
        "a": a.pk, "b": b.pk,
        "added": sorted([items[10].pk, new.pk]),
        "removed": [items[4].pk],
        "changed": [
            {"item_id": items[0].pk, "fields": {"bucket": {"before": "easy", "after": "medium"}}},
            {"item_id": items[3].pk, "fields": {"answer": {"before": "answer 3", "after": "new answer"},
                                                "key_words": {"before": [], "after": ["k1", "k2"]}}},
        ],
    }
    reverse = services.snapshot_diff(a=b, b=a)
    assert (reverse.added, reverse.removed) == ([items[4].pk], sorted([items[10].pk, new.pk]))
    assert services.snapshot_diff(a=a, b=a).as_dict() == {"a": a.pk, "b": a.pk, "added": [], "removed": [],
                                                          "changed": []}
