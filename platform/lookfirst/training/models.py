from __future__ import annotations

from django.conf import settings
from django.db import models

RECIPES = ("pebr-2stage", "capcurriculum-3stage", "merged")


class TrainingJob(models.Model):
    """A staged GRPO run of `python -m trainer run` on an export of a snapshot."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    snapshot = models.ForeignKey("snapshots.Snapshot", on_delete=models.PROTECT, related_name="training_jobs")
    export = models.ForeignKey("snapshots.Export", null=True, on_delete=models.PROTECT, related_name="+")
    recipe = models.CharField(max_length=40, choices=[(r, r) for r in RECIPES])
    model_spec = models.CharField(max_length=500)
    clip_spec = models.CharField(max_length=500, blank=True)
    config_name = models.CharField(max_length=100, default="cpu-demo.yaml", help_text="a file in trainer/configs")
    overrides = models.JSONField(default=dict, blank=True, help_text="config fields overriding the file")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    out_dir = models.CharField(max_length=1000, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.recipe}"


class StageRun(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=40)
    order = models.PositiveIntegerField()
    state = models.CharField(max_length=10, default="pending")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True)
    eval = models.JSONField(default=dict, blank=True)
    model_dir = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["job", "order"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="stage_once_per_job")]


class MetricPoint(models.Model):
    """One logged step of one stage, as the trainer wrote it to metrics.jsonl."""

    stage = models.ForeignKey(StageRun, on_delete=models.CASCADE, related_name="points")
    line = models.PositiveIntegerField(help_text="line number in metrics.jsonl: following twice adds nothing")
    step = models.PositiveIntegerField()
    data = models.JSONField()

    class Meta:
        ordering = ["stage", "line"]
        constraints = [models.UniqueConstraint(fields=["stage", "line"], name="metric_once_per_line")]
