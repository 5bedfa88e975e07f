from __future__ import annotations

from django.conf import settings
from django.db import models


class LabelStudioConnection(models.Model):
    """The one Label Studio server this installation talks to (row pk=1). Admins edit it."""

    url = models.URLField(max_length=500, help_text="Label Studio's address, e.g. http://127.0.0.1:8080")
    token = models.CharField(max_length=2000, help_text="legacy API token or personal access token")
    lookfirst_url = models.URLField(max_length=500, help_text="how annotators' browsers reach this LookFirst server")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def token_hint(self) -> str:
        return f"…{self.token[-4:]}" if self.token else ""

    def __str__(self) -> str:
        return self.url


class LabelStudioProject(models.Model):
    """A Label Studio project we created for a selection of one pool."""

    name = models.CharField(max_length=200, unique=True)
    pool = models.ForeignKey("pools.Pool", on_delete=models.PROTECT, related_name="labelstudio_projects")
    ls_project_id = models.PositiveIntegerField()
    server_url = models.URLField(max_length=500)
    n_images = models.PositiveSmallIntegerField(default=1, help_text="image slots in the labeling config")
    label_config = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    pushed_at = models.DateTimeField(null=True)
    pulled_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class LabelStudioTask(models.Model):
    """One item as pushed to one project. item_version/pushed_values are as of the latest push;
    synced_version is the item version our own pulls left it at (a later change is someone else's)."""

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="tasks")
    item = models.ForeignKey("pools.Item", on_delete=models.PROTECT, related_name="labelstudio_tasks")
    ls_task_id = models.PositiveIntegerField()
    item_version = models.PositiveIntegerField()
    synced_version = models.PositiveIntegerField()
    pushed_values = models.JSONField()
    data = models.JSONField(help_text="the task data sent to Label Studio")
    model_version = models.CharField(max_length=100)
    pushed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "item"], name="lstask_item_once_per_project"),
            models.UniqueConstraint(fields=["project", "ls_task_id"], name="lstask_unique_ls_id"),
        ]


class LabelStudioAnnotation(models.Model):
    """An annotation a pull has handled; its id is never applied twice."""

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        UNCHANGED = "unchanged"
        CONFLICT = "conflict"
        INVALID = "invalid"
        CANCELLED = "cancelled"

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="annotations")
    task = models.ForeignKey(LabelStudioTask, on_delete=models.CASCADE, related_name="annotations")
    ls_annotation_id = models.PositiveIntegerField()
    annotator = models.CharField(max_length=254, blank=True)
    annotated_at = models.DateTimeField(null=True)
    values = models.JSONField(help_text="the item fields the annotation sets")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    message = models.TextField(blank=True)
    audit_entry = models.ForeignKey("curation.AuditEntry", null=True, on_delete=models.SET_NULL, related_name="+")
    pulled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "ls_annotation_id"], name="lsannotation_once")]


class LabelStudioConflict(models.Model):
    """An annotation not applied because the item changed in LookFirst after it was pushed."""

    class State(models.TextChoices):
        OPEN = "open"
        TOOK_LABELSTUDIO = "took_labelstudio"
        KEPT_LOOKFIRST = "kept_lookfirst"

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="conflicts")
    annotation = models.OneToOneField(LabelStudioAnnotation, on_delete=models.CASCADE, related_name="conflict")
    item = models.ForeignKey("pools.Item", on_delete=models.PROTECT, related_name="+")
    pushed_version = models.PositiveIntegerField()
    item_version = models.PositiveIntegerField(help_text="the item's version when the conflict was found")
    pushed_values = models.JSONField()
    current_values = models.JSONField()
    annotation_values = models.JSONField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class LabelStudioJob(models.Model):
    """A push or pull started from the UI and run by a worker; progress is polled."""

    class Kind(models.TextChoices):
        PUSH = "push"
        PULL = "pull"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=4, choices=Kind.choices)
    project_name = models.CharField(max_length=200)
    pool = models.ForeignKey("pools.Pool", null=True, on_delete=models.CASCADE, related_name="+")
    filter_params = models.JSONField(default=dict, blank=True)
    item_ids = models.JSONField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def progress(self) -> float:
        return 1.0 if self.state == self.State.DONE else (self.done / self.total if self.total else 0.0)
