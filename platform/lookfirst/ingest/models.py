from __future__ import annotations

from django.conf import settings
from django.db import models


class IngestRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    pool = models.ForeignKey("pools.Pool", on_delete=models.PROTECT, related_name="ingest_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    source = models.CharField(max_length=1000)
    source_name = models.CharField(max_length=500, help_text="what the user called it (upload file name or path)")
    requested_format = models.CharField(max_length=20, default="auto")
    format = models.CharField(max_length=20, blank=True)
    images_dir = models.CharField(max_length=1000, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows_seen = models.PositiveIntegerField(default=0)
    ingested = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, help_text="estimated before reading, for progress")
    message = models.TextField(blank=True, help_text="why the whole run failed, if it did")

    class Meta:
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        if self.state == self.State.DONE:
            return 1.0
        return min(1.0, self.rows_seen / self.rows_total) if self.rows_total else 0.0

    @property
    def error_count(self) -> int:
        return self.errors.count()


class IngestError(models.Model):
    run = models.ForeignKey(IngestRun, on_delete=models.CASCADE, related_name="errors")
    row = models.PositiveIntegerField()
    field = models.CharField(max_length=200)
    reason = models.TextField()

    class Meta:
        ordering = ["row", "id"]
