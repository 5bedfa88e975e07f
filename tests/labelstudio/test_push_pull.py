from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from lookfirst.curation.models import AuditEntry
from lookfirst.curation.selectors import ItemFilter
from lookfirst.curation.services import item_update
from lookfirst.labelstudio import services
from lookfirst.labelstudio.models import LabelStudioAnnotation, LabelStudioConflict, LabelStudioTask
from lookfirst.pools.models import Item

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]


def _state(item_id: int) -> dict:
    return Item.objects.filter(pk=item_id).values("answer", "bucket", "bucket_source", "key_words", "description",
                                                 "version").get()


def _ls_tasks(ls_client, project) -> dict[int, object]:
    """Label Studio's tasks of a project, by our item id."""
    return {t.data["item_id"]: t for t in ls_client.tasks.list(project=project.ls_project_id, page_size=100)}


def _choice(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "question", "type": "choices", "value": {"choices": [value]}}


def _text(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "question", "type": "textarea", "value": {"text": [value]}}


def test_push_a_filtered_selection(connected, pool_items, ls_client, curator, live_server):
    pool, items = pool_items
    calls = []
    result = services.labelstudio_project_push(
        user=curator, pool=pool, project_name="medium-unsure", flt=ItemFilter.from_params({"bucket": "medium",
                                                                                           "conf_max": "0.6"}),
        progress=lambda done, total: calls.append((done, total)))
    assert (result.created, result.updated, calls) == (2, 0, [(2, 2)])
    project = result.project
    assert ls_client.projects.get(id=project.ls_project_id).label_config == project.label_config

    rows = {r.item_id: r for r in LabelStudioTask.objects.filter(project=project)}
    assert sorted(rows) == [items[0].pk, items[1].pk]
    tasks = _ls_tasks(ls_client, project)
    assert sorted(tasks) == sorted(rows)
    for item in items[:2]:
        row, task = rows[item.pk], tasks[item.pk]
        assert (row.ls_task_id, row.item_version, row.synced_version) == (task.id, 1, 1)
        assert task.data == row.data
        assert {k: v for k, v in task.data.items() if k != "image_0"} == {
            "item_id": item.pk, "item_version": 1, "pool": "lspool", "question": item.question}
        assert task.data["image_0"].startswith(f"{live_server.url}/labelstudio/images/")
        n = items.index(item)
        assert row.pushed_values == {"answer": str(n + 1), "bucket": "medium", "key_words": [],
                                     "description": f"picture number {n}"}
        predictions = ls_client.predictions.list(task=task.id)
        assert [(p.model_version, p.result) for p in predictions] == [("lookfirst", [
            _text("answer", str(n + 1)), _choice("bucket", "medium"), _text("description", f"picture number {n}")])]
        # What an annotator's browser does: fetch the image cross-origin, without a LookFirst session.
        response = httpx.get(task.data["image_0"], headers={"Origin": connected.url})
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
        assert response.content == (Path(settings.MEDIA_ROOT) / item.images()[0].relative_path).read_bytes()


def test_pushing_again_updates_the_same_tasks(connected, pool_items, ls_client, curator):
    from lookfirst.scoring.models import BucketPolicy, ScoringRun

    pool, items = pool_items
    first = services.labelstudio_project_push(user=curator, pool=pool, project_name="again",
                                              item_ids=[items[0].pk, items[1].pk])
    item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"bucket": "hard"})
    policy, _ = BucketPolicy.objects.get_or_create(name="ls-test", defaults={"rules": []})
    run = ScoringRun.objects.create(pool=pool, model_spec="lookfirst:shapes-vlm", state="done", policy=policy)
    # A push that died between Label Studio's import and our record left a task we do not know about.
    orphan = ls_client.projects.import_tasks(id=first.project.ls_project_id, return_task_ids=True, request=[
        {"data": {"item_id": items[3].pk, "item_version": 1, "question": "?", "image_0": ""}}]).task_ids[0]
    second = services.labelstudio_project_push(user=curator, pool=pool, project_name="again",
                                               item_ids=[items[0].pk, items[1].pk, items[2].pk, items[3].pk])
    assert (second.project.pk, second.created, second.updated) == (first.project.pk, 2, 2)
    tasks = _ls_tasks(ls_client, second.project)
    assert sorted(tasks) == [items[0].pk, items[1].pk, items[2].pk, items[3].pk]
    assert LabelStudioTask.objects.filter(project=second.project).count() == 4
    adopted = LabelStudioTask.objects.get(project=second.project, item=items[3])
    assert adopted.ls_task_id == orphan and tasks[items[3].pk].data == adopted.data
    assert [p.model_version for p in ls_client.predictions.list(task=orphan)] == [str(run.pk)]
    changed = tasks[items[0].pk]
    assert changed.data["item_version"] == 2
    assert [(p.model_version, p.result) for p in ls_client.predictions.list(task=changed.id)] == [
        (str(run.pk), [_text("answer", "1"), _choice("bucket", "hard"), _text("description", "picture number 0")])]
    row = LabelStudioTask.objects.get(project=second.project, item=items[0])
    assert (row.item_version, row.synced_version, row.pushed_values["bucket"], row.data) == (2, 2, "hard",
                                                                                             changed.data)


def test_pull_applies_annotations_reports_conflicts_and_is_idempotent(connected, pool_items, ls_client, curator,
                                                                      labelstudio_server):
    pool, items = pool_items
    project = services.labelstudio_project_push(user=curator, pool=pool, project_name="pull-me",
                                                item_ids=[i.pk for i in items[:4]]).project
    tasks = _ls_tasks(ls_client, project)
    annotator = ls_client.users.create(username="annotator1", email="annotator1@lookfirst.test")
    # Changed in LookFirst after the push: its annotation must not overwrite this.
    item_update(user=curator, item_id=items[1].pk, expected_version=1, changes={"answer": "22"})

    def annotate(item, result, **extra):
        return ls_client.annotations.create(id=tasks[item.pk].id, result=result, completed_by=annotator.id, **extra)

    a0 = annotate(items[0], [_text("answer", "1"), _choice("bucket", "easy"), _text("key_words", "red, circle"),
                             _text("description", "picture number 0")])
    a1 = annotate(items[1], [_text("answer", "2"), _choice("bucket", "hard")])
    annotate(items[2], [_text("answer", "3"), _choice("bucket", "medium")])  # accepted the prediction as it was
    annotate(items[3], [], was_cancelled=True)  # skipped in Label Studio
    before = {i.pk: _state(i.pk) for i in items}

    result = services.labelstudio_project_pull(user=curator, project_name="pull-me")
    out = result.as_dict()
    assert {k: out[k] for k in ("applied", "unchanged", "conflicts", "invalid", "cancelled", "already_pulled")} == {
        "applied": 1, "unchanged": 1, "conflicts": 1, "invalid": 0, "cancelled": 1, "already_pulled": 0}
    assert out["changes"] == [{"item": items[0].pk, "task": tasks[items[0].pk].id, "annotation": a0.id,
                               "annotator": "annotator1@lookfirst.test", "version": 2,
                               "fields": {"bucket": ["medium", "easy"], "key_words": [[], ["red", "circle"]]}}]
    assert _state(items[0].pk) == {"answer": "1", "bucket": "easy", "bucket_source": "curator",
                                   "key_words": ["red", "circle"], "description": "picture number 0", "version": 2}
    for unchanged in items[1:]:
        assert _state(unchanged.pk) == before[unchanged.pk]

    entry = AuditEntry.objects.get(item=items[0], source="labelstudio")
    assert (entry.user, entry.action, entry.version_after) == (curator, "labelstudio annotation", 2)
    assert entry.before == {"bucket": "medium", "key_words": [], "bucket_source": "scored", "bucket_confidence": 0.5}
    assert entry.after == {"bucket": "easy", "key_words": ["red", "circle"], "bucket_source": "curator",
                           "bucket_confidence": 1.0}
    time = entry.provenance.pop("time")
    assert entry.provenance == {"project": project.ls_project_id, "project_name": "pull-me",
                                "task": tasks[items[0].pk].id, "annotation": a0.id,
                                "annotator": "annotator1@lookfirst.test", "server": labelstudio_server.url}
    assert datetime.fromisoformat(time) == ls_client.annotations.get(id=a0.id).updated_at

    conflict = LabelStudioConflict.objects.get()
    assert (conflict.item_id, conflict.annotation.ls_annotation_id, conflict.state) == (items[1].pk, a1.id, "open")
    assert (conflict.pushed_version, conflict.item_version) == (1, 2)
    assert conflict.pushed_values == {"answer": "2", "bucket": "medium", "key_words": [],
                                      "description": "picture number 1"}
    assert conflict.current_values == {**conflict.pushed_values, "answer": "22"}
    assert conflict.annotation_values == {"answer": "2", "bucket": "hard"}
    assert out["conflict_list"] == [{"item": items[1].pk, "task": tasks[items[1].pk].id, "annotation": a1.id,
                                     "annotator": "annotator1@lookfirst.test", "pushed_version": 1,
                                     "item_version": 2,
                                     "fields": {"answer": ["22", "2"], "bucket": ["medium", "hard"]}}]

    # Pulling again changes nothing.
    audit_count, states = AuditEntry.objects.count(), {i.pk: _state(i.pk) for i in items}
    again = services.labelstudio_project_pull(user=curator, project_name="pull-me").as_dict()
    assert (again["applied"], again["conflicts"], again["unchanged"], again["already_pulled"]) == (0, 0, 0, 4)
    assert AuditEntry.objects.count() == audit_count and {i.pk: _state(i.pk) for i in items} == states
    assert LabelStudioConflict.objects.count() == 1 and LabelStudioAnnotation.objects.count() == 4

    # A later annotation of an item we applied before is applied on top (our own pull is no conflict).
    a0b = annotate(items[0], [_choice("bucket", "hard")])
    later = services.labelstudio_project_pull(user=curator, project_name="pull-me").as_dict()
    assert [(c["annotation"], c["fields"]) for c in later["changes"]] == [(a0b.id, {"bucket": ["easy", "hard"]})]
    assert _state(items[0].pk)["version"] == 3 and later["conflicts"] == 0

    # The curator settles the conflict by taking the annotation: through item_update, audited.
    services.labelstudio_conflict_resolve(user=curator, conflict_id=conflict.pk, take="labelstudio",
                                          expected_version=2)
    assert _state(items[1].pk) == {**states[items[1].pk], "answer": "2", "bucket": "hard", "bucket_source": "curator",
                                   "version": 3}
    resolved = AuditEntry.objects.filter(item=items[1]).first()
    assert (resolved.source, resolved.action, resolved.provenance["conflict"]) == ("labelstudio",
                                                                                  "labelstudio conflict", conflict.pk)
    assert LabelStudioConflict.objects.get().state == "took_labelstudio"
    with pytest.raises(services.LabelStudioError, match="already resolved"):
        services.labelstudio_conflict_resolve(user=curator, conflict_id=conflict.pk, take="lookfirst",
                                              expected_version=None)


def test_repush_keeps_unpulled_annotations_of_a_changed_item_in_conflict(connected, pool_items, ls_client, curator):
    pool, items = pool_items
    project = services.labelstudio_project_push(user=curator, pool=pool, project_name="stale",
                                                item_ids=[items[0].pk]).project
    task_id = _ls_tasks(ls_client, project)[items[0].pk].id
    ls_client.annotations.create(id=task_id, result=[_choice("bucket", "easy")])
    item_update(user=curator, item_id=items[0].pk, expected_version=1, changes={"bucket": "hard"})
    services.labelstudio_project_push(user=curator, pool=pool, project_name="stale", item_ids=[items[0].pk])
    out = services.labelstudio_project_pull(user=curator, project_name="stale").as_dict()
    assert (out["applied"], out["conflicts"]) == (0, 1)
    assert _state(items[0].pk)["bucket"] == "hard"


def test_refusals_change_nothing(connected, pool_items, viewer, curator, ls_client):
    from django.core.exceptions import PermissionDenied

    pool, items = pool_items
    projects_before = len(list(ls_client.projects.list()))
    with pytest.raises(PermissionDenied):
        services.labelstudio_project_push(user=viewer, pool=pool, project_name="nope", item_ids=[items[0].pk])
    with pytest.raises(services.LabelStudioError, match="the selection is empty"):
        services.labelstudio_project_push(user=curator, pool=pool, project_name="nope",
                                          flt=ItemFilter.from_params({"bucket": "hard"}))
    with pytest.raises(services.LabelStudioError, match="no Label Studio project named 'nope'"):
        services.labelstudio_project_pull(user=curator, project_name="nope")
    assert len(list(ls_client.projects.list())) == projects_before
    assert not LabelStudioTask.objects.exists()
