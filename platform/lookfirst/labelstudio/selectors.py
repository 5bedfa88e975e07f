from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from lookfirst.labelstudio.models import LabelStudioConflict, LabelStudioJob, LabelStudioProject


def projects_with_counts() -> QuerySet[LabelStudioProject]:
    return LabelStudioProject.objects.select_related("pool").annotate(
        task_count=Count("tasks", distinct=True),
        open_conflicts=Count("conflicts", filter=Q(conflicts__state=LabelStudioConflict.State.OPEN), distinct=True),
    ).order_by("-created_at")


def conflicts_for(*, project: LabelStudioProject, state: str = LabelStudioConflict.State.OPEN):
    return (LabelStudioConflict.objects.filter(project=project, state=state)
            .select_related("item", "annotation__task").order_by("item_id", "id"))


def jobs_recent(*, limit: int = 20) -> QuerySet[LabelStudioJob]:
    return LabelStudioJob.objects.select_related("user", "pool")[:limit]
