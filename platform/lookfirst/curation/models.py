from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One change to one item: who, when, from where, and the fields before and after."""

    class Source(models.TextChoices):
        UI = "ui"
        REVIEW = "review"
        BULK = "bulk"
        API = "api"
        LABEL_STUDIO = "labelstudio"
        UNDO = "undo"

    item = models.ForeignKey("pools.Item", on_delete=models.PROTECT, related_name="audit")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    action = models.CharField(max_length=40)
    before = models.JSONField()
    after = models.JSONField()
    version_after = models.PositiveIntegerField()
    provenance = models.JSONField(default=dict, blank=True, help_text="e.g. Label Studio project, task, annotator")
    undone = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["item", "-created_at"], name="audit_item_recent")]


class BulkJob(models.Model):
    """A bulk edit too large to apply inside one request: run by a worker, progress polled."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    pool = models.ForeignKey("pools.Pool", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    item_ids = models.JSONField()
    changes = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def progress(self) -> float:
        return 1.0 if self.state == self.State.DONE else (self.done / self.total if self.total else 0.0)
