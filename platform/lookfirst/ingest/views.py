from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from lookfirst.accounts.roles import Role, check_role
from lookfirst.ingest import services
from lookfirst.ingest.forms import UploadForm
from lookfirst.ingest.models import IngestRun
from lookfirst.ingest.uploads import BoundedUploadHandler


@csrf_exempt  # the upload handler must be set before the body is read; CSRF is checked just below
@require_POST
def upload(request):
    request.upload_handlers = [BoundedUploadHandler(request)]
    return _upload(request)


@csrf_protect
def _upload(request):
    check_role(request.user, Role.CURATOR)
    if getattr(request, "upload_too_large", False):
        return JsonResponse({"detail": "upload too large"}, status=413)
    form = UploadForm(request.POST, request.FILES)
    if getattr(request, "upload_too_large", False):
        return JsonResponse({"detail": "upload too large"}, status=413)
    if not form.is_valid():
        return render(request, "ingest/upload_invalid.html", {"form": form}, status=400)
    run = services.ingest_upload_accept(
        user=request.user, pool_name=form.cleaned_data["pool"], fmt=form.cleaned_data["format"],
        upload=form.cleaned_data["file"],
    )
    messages.info(request, f"Upload received: ingesting {run.source_name} into {run.pool.name}.")
    return redirect("ingest:run", run_id=run.pk)


def run_detail(request, run_id: int):
    run = get_object_or_404(IngestRun.objects.select_related("pool", "created_by"), pk=run_id)
    return render(request, "ingest/run.html", {"run": run, "errors": run.errors.all()[:500]})


def run_status(request, run_id: int):
    run = get_object_or_404(IngestRun, pk=run_id)
    data = {
        "id": run.pk, "state": run.state, "format": run.format, "rows_seen": run.rows_seen,
        "rows_total": run.rows_total, "ingested": run.ingested, "duplicates": run.duplicates,
        "skipped": run.skipped, "progress": round(run.progress, 4), "message": run.message,
    }
    if request.htmx:
        return render(request, "ingest/_run_status.html", {"run": run})
    return JsonResponse(data)

