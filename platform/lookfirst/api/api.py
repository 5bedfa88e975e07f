"""The REST API (/api/): pools, items, scoring runs, snapshots, diffs and exports.

Endpoints parse input and call selectors (reads, viewer role) or services (writes, which check their own
role). Clients authenticate with `Authorization: Bearer <token>` (`manage.py api_token create USER`) or, in
the browser, with the session cookie (CSRF-checked).
"""
from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count
from django.http import FileResponse, StreamingHttpResponse
from ninja import NinjaAPI, Query, Status
from ninja.security import HttpBearer, django_auth

from lookfirst.accounts.roles import Role, check_role
from lookfirst.api import schemas as s
from lookfirst.api.services import bearer_user
from lookfirst.curation.selectors import FilterError, ItemFilter, items_page
from lookfirst.pools import selectors as pool_selectors
from lookfirst.pools.models import Item, Pool
from lookfirst.scoring import services as scoring
from lookfirst.scoring.models import ScoringRun
from lookfirst.snapshots import selectors as snapshot_selectors
from lookfirst.snapshots import services as snapshots
from lookfirst.snapshots.models import Export, Snapshot


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        return bearer_user(request)


api = NinjaAPI(title="LookFirst API", version="1", urls_namespace="api", auth=[BearerToken(), django_auth],
               description=__doc__)
ERRORS = {400: s.Error, 403: s.Error, 404: s.Error}


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return api.create_response(request, {"detail": str(exc) or "permission denied"}, status=403)


@api.exception_handler(ObjectDoesNotExist)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc) or "not found"}, status=404)


for _error in (FilterError, scoring.ScoringError, snapshots.SnapshotError, snapshots.ExportError):
    api.add_exception_handler(
        _error, lambda request, exc: api.create_response(request, {"detail": str(exc)}, status=400))


def _viewer(request) -> None:
    check_role(request.user, Role.VIEWER)


def _username(user) -> str | None:
    return user.username if user is not None else None


# ------------------------------------------------------------------ pools and items
@api.get("/pools", response={200: list[s.PoolOut], **ERRORS}, tags=["pools"])
def pool_list(request):
    _viewer(request)
    return list(pool_selectors.pool_list_with_counts())


@api.get("/pools/{name}", response={200: s.PoolDetailOut, **ERRORS}, tags=["pools"])
def pool_detail(request, name: s.PoolName):
    _viewer(request)
    pool = pool_selectors.pool_list_with_counts().get(name=name)
    buckets = pool.items.filter(excluded=False).values("bucket").annotate(n=Count("id")).order_by("bucket")
    pool.buckets = {row["bucket"]: row["n"] for row in buckets}
    pool.answer_types = pool_selectors.pool_answer_type_counts(pool=pool)
    pool.sources = pool_selectors.pool_source_counts(pool=pool)
    return pool


def _item_out(item: Item, pool_name: str) -> dict:
    fields = s.ItemOut.model_fields
    return {**{name: getattr(item, name) for name in fields if name != "pool"}, "pool": pool_name}


@api.get("/pools/{name}/items", response={200: s.ItemPageOut, **ERRORS}, tags=["pools"])
def item_list(request, name: s.PoolName, filters: Query[s.ItemQuery]):
    """Filtered items in keyset pages: pass `next` back as `after` for the following page."""
    _viewer(request)
    pool = Pool.objects.get(name=name)
    page = items_page(pool=pool, flt=ItemFilter.from_params(request.GET), after=filters.after, size=filters.size)
    return {"items": [_item_out(item, pool.name) for item in page.items], "next": page.next_cursor}


@api.get("/items/{item_id}", response={200: s.ItemOut, **ERRORS}, tags=["pools"])
def item_detail(request, item_id: s.Id):
    _viewer(request)
    item = Item.objects.select_related("pool").get(pk=item_id)
    return _item_out(item, item.pool.name)


# ------------------------------------------------------------------ scoring runs
def _run_out(run: ScoringRun) -> dict:
    fields = {name: getattr(run, name) for name in s.ScoringRunOut.model_fields
              if name not in ("pool", "policy", "created_by")}
    return {**fields, "pool": run.pool.name, "policy": run.policy.name, "created_by": _username(run.created_by)}


def _runs():
    return ScoringRun.objects.select_related("pool", "policy", "created_by")


@api.get("/scoring-runs", response={200: list[s.ScoringRunOut], **ERRORS}, tags=["scoring"])
def scoring_run_list(request, pool: s.PoolName | None = None, limit: int = Query(50, ge=1, le=500)):
    _viewer(request)
    runs = _runs().filter(pool__name=pool) if pool else _runs()
    return [_run_out(run) for run in runs.order_by("-created_at", "-id")[:limit]]


@api.get("/scoring-runs/{run_id}", response={200: s.ScoringRunOut, **ERRORS}, tags=["scoring"])
def scoring_run_detail(request, run_id: s.Id):
    _viewer(request)
    return _run_out(_runs().get(pk=run_id))


@api.post("/scoring-runs", response={201: s.ScoringRunOut, **ERRORS}, tags=["scoring"])
def scoring_run_create(request, body: s.ScoringRunIn):
    """Queue a scoring run over the pool's kept items (curator)."""
    check_role(request.user, Role.CURATOR)  # before the pool lookup: refusals reveal nothing
    data = body.dict()
    pool = Pool.objects.get(name=data.pop("pool"))
    run = scoring.scoring_run_create(user=request.user, pool=pool, **data)
    return Status(201, _run_out(_runs().get(pk=run.pk)))


# ------------------------------------------------------------------ snapshots and diffs
def _snapshot_out(snapshot: Snapshot) -> dict:
    fields = {name: getattr(snapshot, name) for name in s.SnapshotOut.model_fields
              if name not in ("pool", "parent", "created_by")}
    return {**fields, "pool": snapshot.pool.name, "parent": snapshot.parent_id,
            "created_by": _username(snapshot.created_by)}


@api.get("/snapshots", response={200: list[s.SnapshotOut], **ERRORS}, tags=["snapshots"])
def snapshot_list(request, pool: s.PoolName | None = None):
    _viewer(request)
    pool_obj = Pool.objects.get(name=pool) if pool else None
    return [_snapshot_out(snapshot) for snapshot in snapshot_selectors.snapshot_list(pool=pool_obj)]


@api.post("/snapshots", response={201: s.SnapshotOut, **ERRORS}, tags=["snapshots"])
def snapshot_create(request, body: s.SnapshotIn):
    """Freeze the pool's current curated state as its next version (curator)."""
    check_role(request.user, Role.CURATOR)
    pool = Pool.objects.get(name=body.pool)
    parent = snapshot_selectors.snapshot_get(snapshot_id=body.parent) if body.parent else None
    snapshot = snapshots.snapshot_create(user=request.user, pool=pool, name=body.name, parent=parent,
                                         description=body.description)
    return Status(201, _snapshot_out(snapshot_selectors.snapshot_get(snapshot_id=snapshot.pk)))


@api.get("/snapshots/{snapshot_id}", response={200: s.SnapshotOut, **ERRORS}, tags=["snapshots"])
def snapshot_detail(request, snapshot_id: s.Id):
    _viewer(request)
    return _snapshot_out(snapshot_selectors.snapshot_get(snapshot_id=snapshot_id))


@api.get("/snapshots/{a}/diff/{b}", response={200: s.DiffOut, **ERRORS}, tags=["snapshots"])
def snapshot_diff(request, a: s.Id, b: s.Id):
    """Items added, removed (excluded counts as removed) and changed (bucket, answer, key words) from a to b."""
    _viewer(request)
    first, second = (snapshot_selectors.snapshot_get(snapshot_id=i) for i in (a, b))
    return snapshots.snapshot_diff(a=first, b=second).as_dict()


# ------------------------------------------------------------------ exports
def _export_out(export: Export) -> dict:
    fields = {name: getattr(export, name) for name in s.ExportOut.model_fields
              if name not in ("snapshot", "created_by")}
    return {**fields, "snapshot": export.snapshot_id, "created_by": _username(export.created_by)}


@api.get("/exports", response={200: list[s.ExportOut], **ERRORS}, tags=["exports"])
def export_list(request, snapshot: s.Id | None = None, limit: int = Query(50, ge=1, le=500)):
    _viewer(request)
    snapshot_obj = snapshot_selectors.snapshot_get(snapshot_id=snapshot) if snapshot else None
    return [_export_out(e) for e in snapshot_selectors.export_list(snapshot=snapshot_obj)[:limit]]


@api.post("/exports", response={201: s.ExportOut, **ERRORS}, tags=["exports"])
def export_create(request, body: s.ExportIn):
    """Queue an export of a snapshot for a trainer (curator); poll it, then download it."""
    check_role(request.user, Role.CURATOR)
    snapshot = snapshot_selectors.snapshot_get(snapshot_id=body.snapshot)
    export = snapshots.export_create(user=request.user, snapshot=snapshot, fmt=body.format, rule=body.rule,
                                     file_type=body.file_type, eval_seed=body.eval_seed,
                                     eval_fraction=body.eval_fraction)
    return Status(201, _export_out(snapshot_selectors.export_get(export_id=export.pk)))


@api.get("/exports/{export_id}", response={200: s.ExportOut, **ERRORS}, tags=["exports"])
def export_detail(request, export_id: s.Id):
    _viewer(request)
    return _export_out(snapshot_selectors.export_get(export_id=export_id))


@api.get("/exports/{export_id}/download", response={200: None, **ERRORS, 409: s.Error}, tags=["exports"])
def export_download(request, export_id: s.Id):
    """The whole finished export as one zip (streamed)."""
    _viewer(request)
    export = snapshot_selectors.export_get(export_id=export_id)
    if export.state != Export.State.DONE:
        return Status(409, {"detail": f"export {export.pk} is {export.state}, not done"})
    response = StreamingHttpResponse(snapshot_selectors.export_zip_stream(export=export),
                                     content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="lookfirst-export-{export.pk}.zip"'
    return response


@api.get("/exports/{export_id}/files/{path:name}", response={200: None, **ERRORS, 409: s.Error}, tags=["exports"])
def export_file(request, export_id: s.Id, name: s.Text):
    """One file of a finished export, by its name in the manifest (e.g. `perception.parquet`)."""
    _viewer(request)
    export = snapshot_selectors.export_get(export_id=export_id)
    if export.state != Export.State.DONE:
        return Status(409, {"detail": f"export {export.pk} is {export.state}, not done"})
    path = snapshot_selectors.export_file(export=export, name=name)
    if path is None:
        return Status(404, {"detail": f"export {export.pk} has no file {name!r}"})
    return FileResponse(open(path, "rb"), as_attachment=True, filename=Path(name).name)
