from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from lookfirst.accounts.roles import Role, check_role
from lookfirst.snapshots.models import Snapshot
from lookfirst.training import selectors, services
from lookfirst.training.forms import LaunchForm
from lookfirst.training.models import TrainingJob


def job_list(request):
    form = LaunchForm(request.POST or None)
    if request.method == "POST":
        check_role(request.user, Role.ADMIN)
        if not form.is_valid():
            return render(request, "training/list.html", _list_context(form), status=400)
        snapshot = get_object_or_404(Snapshot, pk=form.cleaned_data["snapshot"])
        try:
            job = services.training_job_create(
                user=request.user, snapshot=snapshot, recipe=form.cleaned_data["recipe"],
                model_spec=form.cleaned_data["model_spec"], clip_spec=form.cleaned_data["clip_spec"],
                config_name=form.cleaned_data["config_name"], overrides=form.cleaned_data["overrides"] or {})
        except services.TrainingError as exc:
            form.add_error(None, str(exc))
            return render(request, "training/list.html", _list_context(form), status=400)
        messages.success(request, f"Training job #{job.pk} queued.")
        return redirect("training:job", job_id=job.pk)
    return render(request, "training/list.html", _list_context(form))


def _list_context(form):
    return {"jobs": TrainingJob.objects.select_related("snapshot__pool", "created_by")[:50], "form": form,
            "snapshots": Snapshot.objects.select_related("pool").order_by("-id")[:50]}


def job_detail(request, job_id: int):
    job = get_object_or_404(TrainingJob.objects.select_related("snapshot__pool"), pk=job_id)
    context = {"job": job, "stages": list(job.stages.all()), "curves": selectors.job_curves(job=job),
               "evals": selectors.job_evals(job=job)}
    template = "training/_job_live.html" if request.htmx else "training/job.html"
    return render(request, template, context)


@require_POST
def job_cancel(request, job_id: int):
    job = get_object_or_404(TrainingJob, pk=job_id)
    services.training_job_cancel(user=request.user, job=job)
    messages.info(request, "Cancel requested: the current stage saves and the job stops.")
    return redirect("training:job", job_id=job.pk)


@require_POST
def job_resume(request, job_id: int):
    job = get_object_or_404(TrainingJob, pk=job_id)
    try:
        services.training_job_resume(user=request.user, job=job)
    except services.TrainingError as exc:
        messages.error(request, str(exc))
    return redirect("training:job", job_id=job.pk)


def compare(request):
    try:
        ids = [int(i) for i in request.GET.get("jobs", "").split(",") if i]
    except ValueError:
        return HttpResponseBadRequest("jobs: expected comma-separated job ids")
    jobs = list(TrainingJob.objects.filter(pk__in=ids).select_related("snapshot__pool"))
    eval_accuracy, lengths, rewards = {}, {}, {}
    for job in jobs:
        label = f"#{job.pk} {job.recipe}"
        steps, x = [], 0
        for stage in job.stages.order_by("order"):
            x += stage.step
            if stage.eval.get("accuracy") is not None:
                steps.append((x, stage.eval["accuracy"]))
        eval_accuracy[label] = steps
        curves = selectors.job_curves(job=job)
        lengths[label] = [p for stage in curves.get("completion_length", {}).values() for p in stage]
        rewards[label] = [p for stage in curves.get("reward", {}).values() for p in stage]
    return render(request, "training/compare.html", {
        "jobs": jobs, "eval_accuracy": eval_accuracy, "lengths": lengths, "rewards": rewards,
        "all_jobs": TrainingJob.objects.order_by("-id")[:30]})
