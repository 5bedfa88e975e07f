from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from lookfirst.curation import services
from lookfirst.curation.models import AuditEntry
from lookfirst.pools.models import Item
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(tmp_path):
    _, items = make_pool(tmp_path, "cur", [("Q1?", "1"), ("Q2?", "2"), ("Q3?", None)])
    return items


def _state(item_id):
    return Item.objects.filter(pk=item_id).values("bucket", "bucket_source", "answer", "key_words", "version").get()


def test_edit_is_versioned_and_audited(items, curator):
    change = services.item_update(user=curator, item_id=items[0].pk, expected_version=1,
                                  changes={"bucket": "easy", "key_words": "red, circle ,", "answer": " 4 "})
    assert _state(items[0].pk) == {"bucket": "easy", "bucket_source": "curator", "answer": "4",
                                   "key_words": ["red", "circle"], "version": 2}
    entry = AuditEntry.objects.get()
    assert (entry.user, entry.source, entry.version_after) == (curator, "ui", 2)
    assert entry.before == {"bucket": "unscored", "key_words": [], "answer": "1", "bucket_source": "",
                            "bucket_confidence": None}
    assert entry.after["bucket"] == "easy" and entry.after["answer"] == "4"
    assert change.entry == entry


def test_stale_version_is_refused_with_the_other_change_and_nothing_written(items, curator):
    services.item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"bucket": "hard"})
    before = _state(items[0].pk)
    with pytest.raises(services.EditConflict) as conflict:
        services.item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"bucket": "easy"})
    assert conflict.value.latest.after["bucket"] == "hard"
    assert _state(items[0].pk) == before
    assert AuditEntry.objects.count() == 1


def test_viewer_and_bad_values_are_refused_and_nothing_changes(items, viewer, curator):
    before = _state(items[0].pk)
    with pytest.raises(PermissionDenied):
        services.item_update(user=viewer, item_id=items[0].pk, expected_version=1, changes={"bucket": "easy"})
    with pytest.raises(services.InvalidEdit, match="bucket must be one of"):
        services.item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"bucket": "trivial"})
    with pytest.raises(services.InvalidEdit, match="cannot edit pool"):
        services.item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"pool": 3})
    assert _state(items[0].pk) == before and AuditEntry.objects.count() == 0


def test_undo_restores_the_previous_values(items, curator):
    change = services.item_update(user=curator, item_id=items[1].pk, expected_version=1, changes={"bucket": "easy"})
    services.audit_undo(user=curator, entry_id=change.entry.pk)
    assert _state(items[1].pk) == {"bucket": "unscored", "bucket_source": "", "answer": "2", "key_words": [],
                                   "version": 3}
    assert AuditEntry.objects.get(pk=change.entry.pk).undone
    assert AuditEntry.objects.filter(source="undo").count() == 1
    with pytest.raises(services.InvalidEdit, match="already undone"):
        services.audit_undo(user=curator, entry_id=change.entry.pk)


def test_accepting_a_pseudo_label(items, curator):
    Item.objects.filter(pk=items[2].pk).update(pseudo_answer="7", pseudo_agreement=0.75, bucket="medium",
                                               bucket_source="pseudo_label")
    services.pseudo_label_accept(user=curator, item_id=items[2].pk, expected_version=1)
    assert _state(items[2].pk) == {"bucket": "medium", "bucket_source": "scored", "answer": "7", "key_words": [],
                                   "version": 2}
    with pytest.raises(services.InvalidEdit):
        services.pseudo_label_accept(user=curator, item_id=items[0].pk, expected_version=None)


def test_bulk_update_audits_each_item(items, curator):
    assert services.items_bulk_update(user=curator, item_ids=[i.pk for i in items], changes={"bucket": "medium"}) == 3
    assert AuditEntry.objects.filter(source="bulk").count() == 3
    assert set(Item.objects.values_list("bucket", flat=True)) == {"medium"}
    assert services.items_bulk_update(user=curator, item_ids=[i.pk for i in items], changes={"bucket": "medium"}) == 0
