"""Label Studio: the connection (admins), pushing a selection and pulling annotations back (curators).

Annotations reach items only through `curation.services.item_update` (source "labelstudio", with
provenance). An item edited in LookFirst after it was pushed is not overwritten: its annotation becomes a
LabelStudioConflict. Every annotation id is recorded once, so pulling again changes nothing.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.curation.selectors import FilterError, ItemFilter, items_filtered
from lookfirst.curation.services import EditConflict, InvalidEdit, item_update
from lookfirst.labelstudio import config
from lookfirst.labelstudio.images import image_url
from lookfirst.labelstudio.models import (LabelStudioAnnotation, LabelStudioConflict, LabelStudioConnection,
                                          LabelStudioJob, LabelStudioProject, LabelStudioTask)
from lookfirst.pools.models import Item, Pool

Progress = Callable[[int, int], None]
IMPORT_BATCH = 100
TITLE_MAX = 50  # Label Studio's limit on project titles


class LabelStudioError(Exception):
    pass


class LabelStudioUnreachable(LabelStudioError):
    pass


class LabelStudioAuthError(LabelStudioError):
    pass


# Connection -------------------------------------------------------------------------------------------

def labelstudio_connection_get() -> LabelStudioConnection | None:
    return LabelStudioConnection.objects.filter(pk=1).first()


def labelstudio_connection_save(*, user, url: str, token: str | None, lookfirst_url: str) -> LabelStudioConnection:
    """Store the server address and token. An empty token keeps the stored one."""
    check_role(user, Role.ADMIN)
    current = labelstudio_connection_get()
    for name, value in (("url", url), ("lookfirst_url", lookfirst_url)):
        if not value.startswith(("http://", "https://")):
            raise LabelStudioError(f"{name} must start with http:// or https://, got {value!r}")
    token = (token or "").strip() or (current.token if current else "")
    if not token:
        raise LabelStudioError("an API token is needed (Label Studio: Account & Settings > Access Token)")
    connection, _ = LabelStudioConnection.objects.update_or_create(pk=1, defaults={
        "url": url.rstrip("/"), "token": token, "lookfirst_url": lookfirst_url.rstrip("/"), "updated_by": user})
    return connection


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    url: str
    version: str = ""
    user: str = ""
    error: str = ""


def labelstudio_connection_test(*, user, url: str | None = None, token: str | None = None) -> ConnectionReport:
    """Ask the server who we are and which version it runs; errors come back as text, not exceptions."""
    check_role(user, Role.ADMIN)
    saved = labelstudio_connection_get()
    url = (url or (saved.url if saved else "")).rstrip("/")
    token = token or (saved.token if saved else "")
    if not url or not token:
        return ConnectionReport(ok=False, url=url, error="not configured: set the Label Studio URL and API token")
    try:
        with _talking_to(url):
            client = _client(url=url, token=token, timeout=10, max_retries=0)
            me = client.users.whoami()
            version = client.versions.get()
    except LabelStudioError as exc:
        return ConnectionReport(ok=False, url=url, error=str(exc))
    return ConnectionReport(ok=True, url=url, version=version.release, user=me.email or me.username)


def _connection() -> LabelStudioConnection:
    connection = labelstudio_connection_get()
    if connection is None:
        raise LabelStudioError("Label Studio is not configured: an admin sets it under /labelstudio/settings/ "
                               "or with `manage.py labelstudio connect`")
    return connection


def _client(*, url: str, token: str, timeout: float = 60, max_retries: int = 2):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=token, timeout=timeout, max_retries=max_retries)


@contextlib.contextmanager
def _talking_to(url: str) -> Iterator[None]:
    """Turn transport and API failures into LabelStudioError subclasses with a readable message."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except httpx.TransportError as exc:
        raise LabelStudioUnreachable(f"Label Studio at {url} is unreachable: {exc or type(exc).__name__}") from None
    except ApiError as exc:
        detail = exc.body.get("detail", exc.body) if isinstance(exc.body, dict) else exc.body
        if exc.status_code in (401, 403):
            raise LabelStudioAuthError(
                f"Label Studio at {url} refused the API token ({exc.status_code}: {detail})") from None
        raise LabelStudioError(f"Label Studio at {url} answered {exc.status_code}: {detail}") from None


# Push -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PushResult:
    project: LabelStudioProject
    created: int
    updated: int

    def as_dict(self) -> dict:
        return {"project": self.project.name, "ls_project_id": self.project.ls_project_id,
                "url": f"{self.project.server_url}/projects/{self.project.ls_project_id}/",
                "created": self.created, "updated": self.updated}


def labelstudio_project_push(*, user, pool: Pool, project_name: str, flt: ItemFilter | None = None,
                             item_ids: list[int] | None = None, progress: Progress | None = None) -> PushResult:
    """Push a selection (explicit ids, else the filter) as tasks; pushing to the same project again updates
    its tasks (data, fresh image links, predictions) instead of adding new ones."""
    check_role(user, Role.CURATOR)
    connection = _connection()
    project_name = project_name.strip()
    if not project_name or len(project_name) > TITLE_MAX:
        raise LabelStudioError(f"the project name needs 1 to {TITLE_MAX} characters")
    items = _selection(pool=pool, flt=flt, item_ids=item_ids)
    project = LabelStudioProject.objects.filter(name=project_name).first()
    if project is not None and project.pool_id != pool.pk:
        raise LabelStudioError(f"project {project_name!r} holds items of pool {project.pool.name!r}")
    if project is not None and project.server_url != connection.url:
        raise LabelStudioError(f"project {project_name!r} lives on {project.server_url}, not {connection.url}")
    n_images = max([len(i.image_shas) for i in items] + [project.n_images if project else 1])
    model_version = _model_version(pool=pool)
    done, total, existed = 0, len(items), project is not None
    with _talking_to(connection.url):
        client = _client(url=connection.url, token=connection.token)
        project = _project_ensure(client=client, connection=connection, user=user, pool=pool, project=project,
                                  name=project_name, n_images=n_images)
        rows = {t.item_id: t for t in project.tasks.all()}
        fresh = [i for i in items if i.pk not in rows]
        push = {"client": client, "project": project, "model_version": model_version,
                "base_url": connection.lookfirst_url}
        if fresh and existed:
            fresh = _adopt_orphans(items=fresh, **push)
        for start in range(0, len(fresh), IMPORT_BATCH):
            batch = fresh[start:start + IMPORT_BATCH]
            _tasks_import(items=batch, **push)
            done += len(batch)
            if progress:
                progress(done, total)
        for item in items:
            if item.pk in rows:
                _task_refresh(row=rows[item.pk], item=item, **push)
                done += 1
                if progress and (done % 20 == 0 or done == total):
                    progress(done, total)
        if progress and done != total:  # adopted tasks were refreshed on the way
            progress(total, total)
    LabelStudioProject.objects.filter(pk=project.pk).update(pushed_at=timezone.now())
    project.refresh_from_db()
    updated = sum(1 for i in items if i.pk in rows)
    return PushResult(project=project, created=len(items) - updated, updated=updated)


def _selection(*, pool: Pool, flt: ItemFilter | None, item_ids: list[int] | None) -> list[Item]:
    if item_ids is not None:
        items = list(Item.objects.filter(pool=pool, pk__in=item_ids).order_by("id"))
        missing = sorted(set(item_ids) - {i.pk for i in items})
        if missing:
            raise LabelStudioError(f"items not in pool {pool.name}: {', '.join(map(str, missing[:20]))}")
    else:
        items = list(items_filtered(pool=pool, flt=flt or ItemFilter()).order_by("id"))
    if not items:
        raise LabelStudioError("the selection is empty: nothing to push")
    return items


def _model_version(*, pool: Pool) -> str:
    from lookfirst.scoring.models import ScoringRun

    run = ScoringRun.objects.filter(pool=pool, state=ScoringRun.State.DONE).order_by("-created_at", "-id").first()
    return str(run.pk) if run else "lookfirst"


def _project_ensure(*, client, connection, user, pool, project, name: str, n_images: int) -> LabelStudioProject:
    label_config = config.labeling_config(n_images=n_images)
    if project is None:
        created = client.projects.create(title=name, label_config=label_config,
                                         description=f"LookFirst pool {pool.name}: a selection to label")
        return LabelStudioProject.objects.create(
            name=name, pool=pool, ls_project_id=created.id, server_url=connection.url, n_images=n_images,
            label_config=label_config, created_by=user)
    from label_studio_sdk.core.api_error import ApiError

    try:
        client.projects.get(id=project.ls_project_id)
    except ApiError as exc:
        if exc.status_code == 404:
            raise LabelStudioError(f"project {name!r} (#{project.ls_project_id}) was deleted in Label Studio; "
                                   f"push under a new name") from None
        raise
    if label_config != project.label_config:
        client.projects.update(id=project.ls_project_id, label_config=label_config)
        project.label_config, project.n_images = label_config, n_images
        project.save(update_fields=["label_config", "n_images"])
    return project


def _payload(*, project: LabelStudioProject, item: Item, base_url: str) -> tuple[dict, dict]:
    urls = [image_url(base_url=base_url, sha256=sha) for sha in item.image_shas]
    values = config.item_values(item)
    data = config.task_data(item=item, pool_name=project.pool.name, image_urls=urls, n_images=project.n_images)
    return data, values


def _tasks_import(*, client, project: LabelStudioProject, items: list[Item], model_version: str,
                  base_url: str) -> None:
    payloads = [_payload(project=project, item=item, base_url=base_url) for item in items]
    response = client.projects.import_tasks(id=project.ls_project_id, return_task_ids=True, request=[
        {"data": data, "predictions": [{"model_version": model_version, "result": config.prediction_result(values)}]}
        for data, values in payloads])
    task_ids = list(getattr(response, "task_ids", None) or [])
    if len(task_ids) != len(items):
        raise LabelStudioError(f"Label Studio created {len(task_ids)} tasks for {len(items)} items")
    now = timezone.now()
    # Written right after each batch: a push that dies later leaves no task we do not know about.
    LabelStudioTask.objects.bulk_create([
        LabelStudioTask(project=project, item=item, ls_task_id=task_id, item_version=item.version,
                        synced_version=item.version, pushed_values=values, data=data, model_version=model_version,
                        pushed_at=now)
        for item, task_id, (data, values) in zip(items, task_ids, payloads)])


def _adopt_orphans(*, client, project: LabelStudioProject, items: list[Item], model_version: str,
                   base_url: str) -> list[Item]:
    """Tasks of ours that Label Studio has but we did not record (a push that died mid-way): adopt them."""
    wanted = {i.pk: i for i in items}
    adopted = []
    for task in client.tasks.list(project=project.ls_project_id, page_size=100, fields="task_only"):
        item = wanted.get((task.data or {}).get("item_id"))
        if item is None or item.pk in {i.pk for i in adopted}:
            continue
        data = task.data
        LabelStudioTask.objects.create(
            project=project, item=item, ls_task_id=task.id, item_version=data.get("item_version", item.version),
            synced_version=data.get("item_version", item.version), pushed_values={}, data=data,
            model_version="", pushed_at=timezone.now())
        adopted.append(item)
    for item in adopted:
        row = LabelStudioTask.objects.get(project=project, item=item)
        _task_refresh(client=client, project=project, row=row, item=item, model_version=model_version,
                      base_url=base_url)
    return [i for i in items if i not in adopted]


def _task_refresh(*, client, project: LabelStudioProject, row: LabelStudioTask, item: Item, model_version: str,
                  base_url: str) -> None:
    from label_studio_sdk.core.api_error import ApiError

    data, values = _payload(project=project, item=item, base_url=base_url)
    try:
        client.tasks.update(id=str(row.ls_task_id), data=data)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
        row.delete()  # deleted in Label Studio: push it as a new task
        _tasks_import(client=client, project=project, items=[item], model_version=model_version, base_url=base_url)
        return
    if values != row.pushed_values or model_version != row.model_version:
        for old in client.predictions.list(task=row.ls_task_id):
            client.predictions.delete(id=old.id)
        client.predictions.create(task=row.ls_task_id, result=config.prediction_result(values),
                                  model_version=model_version)
    synced = item.version
    if item.version != row.synced_version:
        # Annotations made against the older values and not pulled yet must still meet the conflict check.
        handled = set(row.annotations.values_list("ls_annotation_id", flat=True))
        if any(a.id not in handled for a in client.annotations.list(id=row.ls_task_id)):
            synced = row.synced_version
    row.item_version, row.synced_version, row.pushed_values, row.data = item.version, synced, values, data
    row.model_version, row.pushed_at = model_version, timezone.now()
    row.save()


# Pull -------------------------------------------------------------------------------------------------

@dataclass
class PullResult:
    project: str
    applied: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)
    unchanged: int = 0
    cancelled: int = 0
    already_pulled: int = 0
    unknown_tasks: int = 0

    def as_dict(self) -> dict:
        return {"project": self.project, "applied": len(self.applied), "unchanged": self.unchanged,
                "conflicts": len(self.conflicts), "invalid": len(self.invalid), "cancelled": self.cancelled,
                "already_pulled": self.already_pulled, "unknown_tasks": self.unknown_tasks,
                "changes": self.applied, "conflict_list": self.conflicts, "invalid_list": self.invalid}


def labelstudio_project_pull(*, user, project_name: str, progress: Progress | None = None) -> PullResult:
    """Apply new annotations in annotation-id order (the later annotation of a task wins)."""
    check_role(user, Role.CURATOR)
    connection = _connection()
    project = labelstudio_project_get(name=project_name)
    if project.server_url != connection.url:
        raise LabelStudioError(f"project {project_name!r} lives on {project.server_url}, not {connection.url}")
    rows = {t.ls_task_id: t for t in project.tasks.all()}
    handled = set(project.annotations.values_list("ls_annotation_id", flat=True))
    result = PullResult(project=project.name)
    with _talking_to(connection.url):
        client = _client(url=connection.url, token=connection.token)
        found = [(task.id, annotation)
                 for task in client.tasks.list(project=project.ls_project_id, page_size=100, fields="all")
                 for annotation in (task.annotations or [])]
        found.sort(key=lambda pair: _get(pair[1], "id"))
        annotators: dict[int, str] = {}
        for n, (task_id, annotation) in enumerate(found, 1):
            row = rows.get(task_id)
            if _get(annotation, "id") in handled:
                result.already_pulled += 1
            elif row is None:
                result.unknown_tasks += 1
            else:
                who = _annotator(client=client, annotation=annotation, cache=annotators)
                _annotation_apply(user=user, project=project, row=row, annotation=annotation, annotator=who,
                                  server=connection.url, result=result)
            if progress and (n % 20 == 0 or n == len(found)):
                progress(n, len(found))
    LabelStudioProject.objects.filter(pk=project.pk).update(pulled_at=timezone.now())
    return result


def _get(obj, key: str):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _annotator(*, client, annotation, cache: dict[int, str]) -> str:
    by = _get(annotation, "completed_by")
    if isinstance(by, dict):
        return by.get("email") or by.get("username") or str(by.get("id", ""))
    if by is None:
        return ""
    if by not in cache:
        user = client.users.get(id=by)
        cache[by] = user.email or user.username or str(by)
    return cache[by]


def _annotation_apply(*, user, project, row: LabelStudioTask, annotation, annotator: str, server: str,
                      result: PullResult) -> None:
    annotation_id = _get(annotation, "id")
    when = _get(annotation, "updated_at") or _get(annotation, "created_at")
    when = when.isoformat() if hasattr(when, "isoformat") else when
    values = config.annotation_values(_get(annotation, "result"))
    provenance = {"project": project.ls_project_id, "project_name": project.name, "task": row.ls_task_id,
                  "annotation": annotation_id, "annotator": annotator, "time": when, "server": server}
    report = {"item": row.item_id, "task": row.ls_task_id, "annotation": annotation_id, "annotator": annotator}
    try:
        with transaction.atomic():
            row = LabelStudioTask.objects.select_for_update().get(pk=row.pk)
            record = LabelStudioAnnotation.objects.create(
                project=project, task=row, ls_annotation_id=annotation_id, annotator=annotator,
                annotated_at=when, values=values, outcome=LabelStudioAnnotation.Outcome.UNCHANGED)
            _decide(user=user, project=project, row=row, record=record, values=values, provenance=provenance,
                    cancelled=bool(_get(annotation, "was_cancelled")), report=report, result=result)
    except IntegrityError:
        result.already_pulled += 1  # a concurrent pull recorded it first


def _decide(*, user, project, row, record, values, provenance, cancelled, report, result) -> None:
    item = Item.objects.get(pk=row.item_id)
    current = config.item_values(item)
    differ = config.values_differ(current, values)
    Outcome = LabelStudioAnnotation.Outcome
    if cancelled:
        record.outcome = Outcome.CANCELLED
        result.cancelled += 1
    elif not differ:
        result.unchanged += 1
    elif item.version != row.synced_version:
        _conflict_record(project=project, row=row, record=record, item=item, current=current, values=values)
        result.conflicts.append({**report, "pushed_version": row.synced_version, "item_version": item.version,
                                 "fields": differ})
    else:
        try:
            change = item_update(user=user, item_id=item.pk, expected_version=row.synced_version,
                                 changes={k: v for k, (_, v) in differ.items()}, source="labelstudio",
                                 action="labelstudio annotation", provenance=provenance)
        except EditConflict:
            item.refresh_from_db()
            _conflict_record(project=project, row=row, record=record, item=item, current=config.item_values(item),
                             values=values)
            result.conflicts.append({**report, "pushed_version": row.synced_version, "item_version": item.version,
                                     "fields": differ})
        except InvalidEdit as exc:
            record.outcome, record.message = Outcome.INVALID, str(exc)
            result.invalid.append({**report, "reason": str(exc)})
        else:
            row.synced_version = change.item.version
            row.save(update_fields=["synced_version"])
            record.outcome, record.audit_entry = Outcome.APPLIED, change.entry
            result.applied.append({**report, "fields": differ, "version": change.item.version})
    record.save(update_fields=["outcome", "message", "audit_entry"])


def _conflict_record(*, project, row, record, item, current: dict, values: dict) -> None:
    record.outcome = LabelStudioAnnotation.Outcome.CONFLICT
    LabelStudioConflict.objects.create(
        project=project, annotation=record, item=item, pushed_version=row.synced_version, item_version=item.version,
        pushed_values=row.pushed_values, current_values=current, annotation_values=values)


def labelstudio_conflict_resolve(*, user, conflict_id: int, take: str,
                                 expected_version: int | None) -> LabelStudioConflict:
    """Settle a conflict: take the annotation (through item_update) or keep LookFirst's values."""
    check_role(user, Role.CURATOR)
    if take not in ("labelstudio", "lookfirst"):
        raise LabelStudioError("take must be 'labelstudio' or 'lookfirst'")
    with transaction.atomic():
        conflict = LabelStudioConflict.objects.select_for_update().select_related(
            "annotation__task", "project").get(pk=conflict_id)
        if conflict.state != LabelStudioConflict.State.OPEN:
            raise LabelStudioError(f"conflict {conflict_id} is already resolved ({conflict.state})")
        if take == "labelstudio":
            annotation = conflict.annotation
            change = item_update(
                user=user, item_id=conflict.item_id, expected_version=expected_version,
                changes=conflict.annotation_values, source="labelstudio", action="labelstudio conflict",
                provenance={"project": conflict.project.ls_project_id, "project_name": conflict.project.name,
                            "task": annotation.task.ls_task_id, "annotation": annotation.ls_annotation_id,
                            "annotator": annotation.annotator, "conflict": conflict.pk,
                            "time": annotation.annotated_at.isoformat() if annotation.annotated_at else None})
            LabelStudioTask.objects.filter(pk=annotation.task_id).update(synced_version=change.item.version)
            conflict.state = LabelStudioConflict.State.TOOK_LABELSTUDIO
        else:
            conflict.state = LabelStudioConflict.State.KEPT_LOOKFIRST
        conflict.resolved_by, conflict.resolved_at = user, timezone.now()
        conflict.save(update_fields=["state", "resolved_by", "resolved_at"])
    return conflict


def labelstudio_project_get(*, name: str) -> LabelStudioProject:
    try:
        return LabelStudioProject.objects.select_related("pool").get(name=name)
    except LabelStudioProject.DoesNotExist:
        raise LabelStudioError(f"no Label Studio project named {name!r} was pushed from LookFirst") from None


# Jobs (the UI's push and pull, run by a worker) --------------------------------------------------------

def labelstudio_job_create(*, user, kind: str, project_name: str, pool: Pool | None = None,
                           filter_params: dict | None = None, item_ids: list[int] | None = None) -> LabelStudioJob:
    """Check the request now, run it on a worker (queued after commit)."""
    check_role(user, Role.CURATOR)
    _connection()
    if kind == LabelStudioJob.Kind.PUSH:
        if pool is None:
            raise LabelStudioError("a push needs a pool")
        ItemFilter.from_params(filter_params or {})  # raises FilterError naming the bad field
        if not project_name.strip() or len(project_name.strip()) > TITLE_MAX:
            raise LabelStudioError(f"the project name needs 1 to {TITLE_MAX} characters")
    elif kind == LabelStudioJob.Kind.PULL:
        pool = labelstudio_project_get(name=project_name).pool
    else:
        raise LabelStudioError(f"unknown job kind {kind!r}")
    with transaction.atomic():
        job = LabelStudioJob.objects.create(kind=kind, project_name=project_name.strip(), pool=pool, user=user,
                                            filter_params=filter_params or {}, item_ids=item_ids)
        transaction.on_commit(lambda: send_task("workers.tasks.labelstudio.run", job.pk, queue="cpu"))
    return job


def labelstudio_job_execute(*, job_id: int) -> LabelStudioJob:
    """Run a queued push or pull; both are idempotent, so a redelivered job is harmless."""
    job = LabelStudioJob.objects.select_related("user", "pool").get(pk=job_id)
    if job.state == LabelStudioJob.State.DONE:
        return job
    LabelStudioJob.objects.filter(pk=job_id).update(state=LabelStudioJob.State.RUNNING, done=0, error="")

    def progress(done: int, total: int) -> None:
        LabelStudioJob.objects.filter(pk=job_id).update(done=done, total=total)

    try:
        if job.kind == LabelStudioJob.Kind.PUSH:
            flt = None if job.item_ids is not None else ItemFilter.from_params(job.filter_params)
            outcome = labelstudio_project_push(user=job.user, pool=job.pool, project_name=job.project_name, flt=flt,
                                               item_ids=job.item_ids, progress=progress).as_dict()
        else:
            outcome = labelstudio_project_pull(user=job.user, project_name=job.project_name,
                                               progress=progress).as_dict()
    except (LabelStudioError, FilterError, PermissionDenied) as exc:
        _job_finish(job_id=job_id, state=LabelStudioJob.State.FAILED, error=str(exc))
    except Exception as exc:
        _job_finish(job_id=job_id, state=LabelStudioJob.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        _job_finish(job_id=job_id, state=LabelStudioJob.State.DONE, result=outcome)
    job.refresh_from_db()
    return job


def _job_finish(*, job_id: int, state: str, error: str = "", result: dict | None = None) -> None:
    LabelStudioJob.objects.filter(pk=job_id).update(state=state, error=error, result=result or {},
                                                    finished_at=timezone.now())
