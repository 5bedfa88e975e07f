"""Every curator change to an item goes through here: checked, versioned, audited.

`item_update` is the one write path (UI, review mode, bulk, API, Label Studio pull). Versions are
optimistic: the caller says which version it edited; if someone saved in between, the update is
refused with the other change attached, and nothing is written.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.curation.models import AuditEntry
from lookfirst.pools.models import AnswerType, Bucket, BucketSource, Item

EDITABLE = ("bucket", "answer", "answer_type", "key_words", "description", "excluded", "tags", "reviewed")
BUCKETS = (Bucket.EASY, Bucket.MEDIUM, Bucket.HARD)


class EditConflict(Exception):
    def __init__(self, item: Item, latest: AuditEntry | None) -> None:
        who = latest.user.username if latest and latest.user else "someone"
        super().__init__(f"item {item.pk} was changed by {who} (now version {item.version}); reload and retry")
        self.item, self.latest = item, latest


class InvalidEdit(ValueError):
    pass


@dataclass(frozen=True)
class Change:
    item: Item
    entry: AuditEntry | None  # None when nothing differed


def _snapshot(item: Item, fields) -> dict:
    return {f: getattr(item, f) for f in fields}


def _clean(changes: dict, restoring: bool = False) -> dict:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidEdit(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}")
    out = dict(changes)
    if "bucket" in out and out["bucket"] not in (Bucket.values if restoring else BUCKETS):
        raise InvalidEdit(f"bucket must be one of {', '.join(BUCKETS)}, got {out['bucket']!r}")
    if "answer_type" in out and out["answer_type"] not in AnswerType.values:
        raise InvalidEdit(f"answer_type must be one of {', '.join(AnswerType.values)}")
    if "answer" in out:
        answer = out["answer"]
        if answer is not None and not isinstance(answer, str):
            raise InvalidEdit("answer must be text or empty")
        out["answer"] = answer.strip() if answer and answer.strip() else None
    for key in ("key_words", "tags"):
        if key in out:
            values = out[key]
            if isinstance(values, str):
                values = [v.strip() for v in values.split(",")]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InvalidEdit(f"{key} must be a list of text")
            out[key] = [v for v in (x.strip() for x in values) if v]
    if "description" in out and out["description"] is not None:
        out["description"] = out["description"].strip() or None
    return out


def item_update(*, user, item_id: int, expected_version: int | None, changes: dict, source: str = "ui",
                action: str = "edit", provenance: dict | None = None) -> Change:
    """Apply `changes` to one item if it is still at `expected_version` (None: don't check)."""
    check_role(user, Role.CURATOR)
    changes = _clean(changes, restoring=source == AuditEntry.Source.UNDO)
    with transaction.atomic():
        item = Item.objects.select_for_update().get(pk=item_id)
        if expected_version is not None and item.version != expected_version:
            raise EditConflict(item, AuditEntry.objects.filter(item=item).select_related("user").first())
        fields = list(changes)
        if "bucket" in changes:
            fields += ["bucket_source", "bucket_confidence"]
            changes = {**changes, "bucket_source": BucketSource.CURATOR, "bucket_confidence": 1.0}
        before = _snapshot(item, fields)
        after = {**before, **changes}
        if after == before:
            return Change(item, None)
        for field, value in changes.items():
            setattr(item, field, value)
        item.version += 1
        item.save(update_fields=fields + ["version", "updated_at"])
        entry = AuditEntry.objects.create(item=item, user=user, source=source, action=action, before=before,
                                          after=after, version_after=item.version, provenance=provenance or {})
    return Change(item, entry)


def pseudo_label_accept(*, user, item_id: int, expected_version: int | None, source: str = "ui") -> Change:
    item = Item.objects.get(pk=item_id)
    if item.answer is not None or item.pseudo_answer is None:
        raise InvalidEdit("only an unlabelled item with a majority-vote pseudo-label can accept it")
    change = item_update(user=user, item_id=item_id, expected_version=expected_version, source=source,
                         action="accept_pseudo_label", changes={"answer": item.pseudo_answer})
    Item.objects.filter(pk=item_id, bucket_source=BucketSource.PSEUDO_LABEL).update(bucket_source=BucketSource.SCORED)
    change.item.refresh_from_db()
    return change


def audit_undo(*, user, entry_id: int) -> Change:
    """Revert one change, if nothing changed the item since. The undo is itself audited."""
    entry = AuditEntry.objects.get(pk=entry_id)
    if entry.undone:
        raise InvalidEdit("this change was already undone")
    restore = {k: v for k, v in entry.before.items() if k in EDITABLE}
    with transaction.atomic():
        change = item_update(user=user, item_id=entry.item_id, expected_version=entry.version_after,
                             changes=restore, source=AuditEntry.Source.UNDO, action=f"undo {entry.action}",
                             provenance={"undoes": entry.pk})
        extra = {k: v for k, v in entry.before.items() if k in ("bucket_source", "bucket_confidence")}
        if extra:
            Item.objects.filter(pk=entry.item_id).update(**extra)
        AuditEntry.objects.filter(pk=entry.pk).update(undone=True)
    change.item.refresh_from_db()
    return change


def items_bulk_update(*, user, item_ids: list[int], changes: dict, source: str = "bulk",
                      progress=None) -> int:
    """The same change on many items, each audited. Returns how many items changed."""
    check_role(user, Role.CURATOR)
    _clean(changes)
    changed = 0
    for n, item_id in enumerate(item_ids, 1):
        if item_update(user=user, item_id=item_id, expected_version=None, changes=changes, source=source,
                       action="bulk edit").entry is not None:
            changed += 1
        if progress and n % 50 == 0:
            progress(n)
    return changed


def changes_validate(*, changes: dict) -> dict:
    return _clean(changes)


def bulk_job_create(*, user, pool, item_ids: list[int], changes: dict):
    """Queue a large bulk edit for a worker (after commit)."""
    from lookfirst.curation.models import BulkJob

    check_role(user, Role.CURATOR)
    _clean(changes)
    with transaction.atomic():
        job = BulkJob.objects.create(pool=pool, user=user, item_ids=item_ids, changes=changes, total=len(item_ids))
        transaction.on_commit(lambda: send_task("workers.tasks.curation.bulk", job.pk, queue="cpu"))
    return job


def bulk_job_execute(*, job_id: int) -> None:
    """Apply a queued bulk edit. Running it again is harmless: unchanged items write no audit entry."""
    from lookfirst.curation.models import BulkJob

    job = BulkJob.objects.select_related("user").get(pk=job_id)
    if job.state == BulkJob.State.DONE:
        return
    BulkJob.objects.filter(pk=job_id).update(state=BulkJob.State.RUNNING, done=0)
    changed = items_bulk_update(
        user=job.user, item_ids=job.item_ids, changes=job.changes,
        progress=lambda n: BulkJob.objects.filter(pk=job_id).update(done=n))
    BulkJob.objects.filter(pk=job_id).update(state=BulkJob.State.DONE, done=job.total, changed=changed)
