from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lookfirst.accounts.roles import Role, check_role
from lookfirst.curation import selectors, services
from lookfirst.curation.models import AuditEntry, BulkJob
from lookfirst.pools.models import Bucket, Item, Pool
from lookfirst.scoring.models import ItemScore

BULK_INLINE_LIMIT = 200
SORT_CHOICES = [("id", "oldest first"), ("-id", "newest first"), ("pass_rate", "pass rate ↑"),
                ("-pass_rate", "pass rate ↓"), ("clip_sim", "CLIP ↑"), ("-clip_sim", "CLIP ↓"),
                ("confidence", "confidence ↑"), ("-confidence", "confidence ↓")]


def _filter_or_400(request):
    try:
        return selectors.ItemFilter.from_params(request.GET), None
    except selectors.FilterError as exc:
        return None, HttpResponseBadRequest(str(exc))


def item_browser(request, name: str):
    pool = get_object_or_404(Pool, name=name)
    flt, error = _filter_or_400(request)
    if error:
        return error
    try:
        page = selectors.items_page(pool=pool, flt=flt, after=request.GET.get("after") or None)
    except selectors.FilterError as exc:
        return HttpResponseBadRequest(str(exc))
    # Items take their source from their ingest run: listing runs is cheap where DISTINCT over items is not.
    sources = sorted(set(pool.ingest_runs.values_list("source_name", flat=True)))[:50]
    return render(request, "curation/browser.html", {
        "pool": pool, "page": page, "flt": flt, "sources": sources, "bucket_values": Bucket.values,
        "sort_choices": SORT_CHOICES,
        "filter_query": "&".join(f"{k}={v}" for k, v in flt.as_params().items()),
    })


def item_detail(request, item_id: int):
    item = get_object_or_404(Item.objects.select_related("pool"), pk=item_id)
    images = item.images()
    scores = list(ItemScore.objects.filter(item=item).select_related("run").order_by("-run__created_at"))
    history = list(AuditEntry.objects.filter(item=item).select_related("user")[:100])
    clip_spec = next((s.run.clip_spec for s in scores if s.run.clip_spec), "")
    return render(request, "curation/item.html", {
        "item": item, "images": images, "scores": scores, "history": history, "clip_spec": clip_spec,
        "buckets": [Bucket.EASY, Bucket.MEDIUM, Bucket.HARD],
        "back": request.GET.get("back") or reverse("curation:browser", args=[item.pool.name]),
    })


def item_neighbours(request, item_id: int):
    from lookfirst.scoring.similarity import item_neighbours as neighbours

    item = get_object_or_404(Item.objects.select_related("pool"), pk=item_id)
    spec = request.GET.get("clip", "")
    found = neighbours(item=item, model_spec=spec, k=8) if spec else []
    by_id = Item.objects.in_bulk([n.item_id for n in found])
    rows = [(by_id[n.item_id], n.similarity) for n in found if n.item_id in by_id]
    return render(request, "curation/_neighbours.html", {"rows": rows})


@require_POST
def item_edit(request, item_id: int):
    """Edit answer / key_words / description / tags / bucket / exclude with the version the form showed."""
    item = get_object_or_404(Item, pk=item_id)
    changes = {}
    for field in ("answer", "key_words", "description", "tags"):
        if field in request.POST:
            changes[field] = request.POST[field]
    if request.POST.get("bucket"):
        changes["bucket"] = request.POST["bucket"]
    if "excluded" in request.POST:
        changes["excluded"] = request.POST["excluded"] == "1"
    action = request.POST.get("action", "edit")
    try:
        if action == "accept_pseudo_label":
            services.pseudo_label_accept(user=request.user, item_id=item.pk,
                                         expected_version=int(request.POST["version"]))
        else:
            services.item_update(user=request.user, item_id=item.pk, expected_version=int(request.POST["version"]),
                                 changes=changes, action=action)
    except services.EditConflict as conflict:
        return _conflict_response(request, conflict)
    except services.InvalidEdit as exc:
        messages.error(request, str(exc))
        return redirect("curation:item", item_id=item.pk)
    messages.success(request, "Saved.")
    return redirect(request.POST.get("next") or reverse("curation:item", args=[item.pk]))


def _conflict_response(request, conflict: services.EditConflict):
    latest = conflict.latest
    return render(request, "curation/conflict.html", {
        "item": conflict.item, "latest": latest, "message": str(conflict),
        "theirs": json.dumps(latest.after if latest else {}, indent=1, default=str),
        "mine": json.dumps({k: v for k, v in request.POST.items() if k != "csrfmiddlewaretoken"}, indent=1),
    }, status=409)


@require_POST
def audit_undo(request, entry_id: int):
    entry = get_object_or_404(AuditEntry, pk=entry_id)
    try:
        services.audit_undo(user=request.user, entry_id=entry.pk)
    except services.EditConflict as conflict:
        return _conflict_response(request, conflict)
    except services.InvalidEdit as exc:
        messages.error(request, str(exc))
    return redirect(request.POST.get("next") or reverse("curation:item", args=[entry.item_id]))


REVIEW_KEYS = {"easy": {"bucket": "easy"}, "medium": {"bucket": "medium"}, "hard": {"bucket": "hard"},
               "exclude": {"excluded": True}, "accept": {}}


def review(request, name: str):
    """One item at a time from a filtered queue of unreviewed items; keyboard-driven (see the template)."""
    pool = get_object_or_404(Pool, name=name)
    flt, error = _filter_or_400(request)
    if error:
        return error
    flt.reviewed = "no"
    if request.method == "POST":
        check_role(request.user, Role.CURATOR)
        decision = request.POST.get("decision", "")
        if decision == "undo":
            last = (AuditEntry.objects.filter(user=request.user, item__pool=pool, source="review", undone=False)
                    .order_by("-created_at", "-id").first())
            if last is not None:
                services.audit_undo(user=request.user, entry_id=last.pk)
                messages.info(request, f"Undid {last.action} on item {last.item_id}.")
        elif decision in REVIEW_KEYS:
            try:
                services.item_update(user=request.user, item_id=int(request.POST["item"]),
                                     expected_version=int(request.POST["version"]),
                                     changes={**REVIEW_KEYS[decision], "reviewed": True}, source="review",
                                     action=f"review: {decision}")
            except services.EditConflict as conflict:
                return _conflict_response(request, conflict)
        else:
            return HttpResponseBadRequest(f"decision: unknown value {decision!r}")
        return redirect(reverse("curation:review", args=[pool.name]) + "?" + request.GET.urlencode())
    page = selectors.items_page(pool=pool, flt=flt, size=1)
    item = page.items[0] if page.items else None
    remaining = selectors.items_filtered(pool=pool, flt=flt).count()
    latest = (ItemScore.objects.filter(item=item).select_related("run").order_by("-run__created_at").first()
              if item else None)
    return render(request, "curation/review.html", {
        "pool": pool, "item": item, "images": item.images() if item else [], "score": latest,
        "remaining": remaining, "flt": flt, "query": request.GET.urlencode(),
    })


@require_POST
def bulk(request, name: str):
    pool = get_object_or_404(Pool, name=name)
    check_role(request.user, Role.CURATOR)
    changes = {}
    if request.POST.get("bucket"):
        changes["bucket"] = request.POST["bucket"]
    if request.POST.get("excluded") in ("0", "1"):
        changes["excluded"] = request.POST["excluded"] == "1"
    if request.POST.get("tag"):
        changes["tags"] = [request.POST["tag"]]
    ids = [int(i) for i in request.POST.getlist("item") if i.isdigit()]
    if request.POST.get("scope") == "filter":
        flt, error = _filter_or_400(request.POST)
        if error:
            return error
        ids = list(selectors.items_filtered(pool=pool, flt=flt).values_list("id", flat=True))
    ids = list(Item.objects.filter(pool=pool, pk__in=ids).values_list("id", flat=True))
    if not ids or not changes:
        messages.error(request, "Select items and a change first.")
        return redirect(request.POST.get("next") or reverse("curation:browser", args=[pool.name]))
    try:
        services.changes_validate(changes=changes)
    except services.InvalidEdit as exc:
        messages.error(request, str(exc))
        return redirect(request.POST.get("next") or reverse("curation:browser", args=[pool.name]))
    if len(ids) <= BULK_INLINE_LIMIT:
        n = services.items_bulk_update(user=request.user, item_ids=ids, changes=changes)
        messages.success(request, f"Changed {n} of {len(ids)} items.")
        return redirect(request.POST.get("next") or reverse("curation:browser", args=[pool.name]))
    job = services.bulk_job_create(user=request.user, pool=pool, item_ids=ids, changes=changes)
    return redirect("curation:bulk_job", job_id=job.pk)


def bulk_job(request, job_id: int):
    job = get_object_or_404(BulkJob.objects.select_related("pool"), pk=job_id)
    template = "curation/_bulk_status.html" if request.htmx else "curation/bulk_job.html"
    return render(request, template, {"job": job})


def settings_page(request):
    check_role(request.user, Role.ADMIN)
    from lookfirst.scoring.models import BucketPolicy
    from lookfirst.scoring.services import policies_ensure

    policies_ensure()
    return render(request, "curation/settings.html", {"policies": BucketPolicy.objects.order_by("name")})
