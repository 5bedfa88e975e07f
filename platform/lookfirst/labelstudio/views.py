from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import FileResponse, Http404, HttpResponseForbidden, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from lookfirst.accounts.roles import Role, check_role
from lookfirst.curation.selectors import FilterError
from lookfirst.curation.services import EditConflict, InvalidEdit
from lookfirst.labelstudio import selectors, services
from lookfirst.labelstudio.forms import ConnectionForm, PushForm
from lookfirst.labelstudio.images import image_token_read
from lookfirst.labelstudio.models import LabelStudioConflict, LabelStudioJob, LabelStudioProject
from lookfirst.pools.models import Image


def connection_settings(request):
    check_role(request.user, Role.ADMIN)
    connection = services.labelstudio_connection_get()
    report = None
    if request.method == "POST":
        form = ConnectionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            if request.POST.get("action") == "test":
                report = services.labelstudio_connection_test(user=request.user, url=data["url"],
                                                              token=data["token"] or None)
            else:
                try:
                    services.labelstudio_connection_save(user=request.user, url=data["url"], token=data["token"],
                                                         lookfirst_url=data["lookfirst_url"])
                except services.LabelStudioError as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(request, "Label Studio connection saved.")
                    return redirect("labelstudio:settings")
    else:
        form = ConnectionForm(initial={
            "url": connection.url if connection else "http://127.0.0.1:8080",
            "lookfirst_url": connection.lookfirst_url if connection else request.build_absolute_uri("/").rstrip("/"),
        })
    return render(request, "labelstudio/settings.html", {"form": form, "connection": connection, "report": report})


def projects(request):
    check_role(request.user, Role.CURATOR)
    return render(request, "labelstudio/projects.html", {
        "projects": selectors.projects_with_counts(), "jobs": selectors.jobs_recent(),
        "form": PushForm(), "connection": services.labelstudio_connection_get(),
    })


@require_POST
def push(request):
    check_role(request.user, Role.CURATOR)
    form = PushForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("labelstudio:projects")
    data = form.cleaned_data
    try:
        job = services.labelstudio_job_create(
            user=request.user, kind=LabelStudioJob.Kind.PUSH, project_name=data["project"], pool=data["pool"],
            filter_params=QueryDict(data["filter"]).dict(), item_ids=data["items"])
    except (services.LabelStudioError, FilterError) as exc:
        messages.error(request, str(exc))
        return redirect("labelstudio:projects")
    return redirect("labelstudio:job", job_id=job.pk)


@require_POST
def pull(request, project_id: int):
    check_role(request.user, Role.CURATOR)
    project = get_object_or_404(LabelStudioProject, pk=project_id)
    try:
        job = services.labelstudio_job_create(user=request.user, kind=LabelStudioJob.Kind.PULL,
                                              project_name=project.name)
    except services.LabelStudioError as exc:
        messages.error(request, str(exc))
        return redirect("labelstudio:project", project_id=project.pk)
    return redirect("labelstudio:job", job_id=job.pk)


def project_detail(request, project_id: int):
    check_role(request.user, Role.CURATOR)
    project = get_object_or_404(LabelStudioProject.objects.select_related("pool"), pk=project_id)
    return render(request, "labelstudio/project.html", {
        "project": project, "conflicts": selectors.conflicts_for(project=project),
        "task_count": project.tasks.count(), "annotation_count": project.annotations.count(),
    })


@require_POST
def conflict_resolve(request, conflict_id: int):
    check_role(request.user, Role.CURATOR)
    conflict = get_object_or_404(LabelStudioConflict, pk=conflict_id)
    version = request.POST.get("version")
    try:
        services.labelstudio_conflict_resolve(user=request.user, conflict_id=conflict.pk,
                                              take=request.POST.get("take", ""),
                                              expected_version=int(version) if version else None)
    except (services.LabelStudioError, EditConflict, InvalidEdit) as exc:
        messages.error(request, str(exc))
    return redirect("labelstudio:project", project_id=conflict.project_id)


def job_detail(request, job_id: int):
    check_role(request.user, Role.CURATOR)
    job = get_object_or_404(LabelStudioJob.objects.select_related("user", "pool"), pk=job_id)
    project = LabelStudioProject.objects.filter(name=job.project_name).first()
    return render(request, "labelstudio/job.html", {"job": job, "project": project})


@require_http_methods(["GET", "HEAD"])
def image(request, token: str):
    """Open to anyone holding a valid, unexpired link (Label Studio's browsers have no LookFirst session)."""
    try:
        sha256 = image_token_read(token=token)
    except signing.BadSignature:
        return HttpResponseForbidden("invalid or expired image link", content_type="text/plain")
    found = get_object_or_404(Image, sha256=sha256)
    path = Path(settings.MEDIA_ROOT) / found.relative_path
    if not path.exists():
        raise Http404("image file missing from the media folder")
    response = FileResponse(open(path, "rb"))
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "private, max-age=3600"
    return response
