from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

# The item state a snapshot freezes, in the order of the canonical serialisation (see services).
FROZEN_FIELDS = (
    "item_id", "question", "answer", "answer_type", "key_words", "description", "image_shas", "bucket",
    "bucket_source", "bucket_confidence", "bucket_policy", "pass_rate", "n_correct", "n_samples", "clip_sim",
    "clip_pct", "excluded", "pseudo_answer", "tags", "metadata",
)


class Snapshot(models.Model):
    """An immutable, versioned freeze of a pool's curated state.

    Rows are never updated or deleted: PostgreSQL triggers (migration 0002) refuse UPDATE and DELETE on
    this table and on SnapshotItem, whatever the client.
    """

    pool = models.ForeignKey("pools.Pool", on_delete=models.PROTECT, related_name="snapshots")
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(help_text="1, 2, 3, ... per pool")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    description = models.TextField(blank=True)
    item_count = models.PositiveIntegerField()
    counts = models.JSONField(default=dict, help_text="kept, excluded and per-bucket counts of kept items")
    manifest_hash = models.CharField(max_length=64, help_text="sha256 of the canonical serialisation of the rows")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pool_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["pool", "version"], name="snapshot_version_per_pool")]

    def __str__(self) -> str:
        return f"{self.pool_id}/v{self.version} {self.name}"


class SnapshotItem(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="items")
    item = models.ForeignKey("pools.Item", on_delete=models.PROTECT, related_name="+")
    question = models.TextField()
    answer = models.TextField(null=True)
    answer_type = models.CharField(max_length=20)
    key_words = ArrayField(models.CharField(max_length=200), default=list)
    description = models.TextField(null=True)
    image_shas = ArrayField(models.CharField(max_length=64))
    bucket = models.CharField(max_length=10)
    bucket_source = models.CharField(max_length=12, blank=True)
    bucket_confidence = models.FloatField(null=True)
    bucket_policy = models.CharField(max_length=60, blank=True)
    pass_rate = models.FloatField(null=True)
    n_correct = models.PositiveIntegerField(null=True)
    n_samples = models.PositiveIntegerField(null=True)
    clip_sim = models.FloatField(null=True)
    clip_pct = models.FloatField(null=True)
    excluded = models.BooleanField()
    pseudo_answer = models.TextField(null=True)
    tags = ArrayField(models.CharField(max_length=60), default=list)
    metadata = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "item"], name="snapshot_item_once")]


class Export(models.Model):
    class Format(models.TextChoices):
        TRL = "trl"
        EASYR1 = "easyr1"
        VERL = "verl"
        JSONL = "jsonl"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=10, choices=Format.choices)
    file_type = models.CharField(max_length=10, help_text="parquet or jsonl (EasyR1 offers both)")
    rule = models.CharField(max_length=40)
    eval_seed = models.BigIntegerField(default=0)
    eval_fraction = models.FloatField(default=0.1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="rows to write, known once the run starts")
    progress = models.PositiveIntegerField(default=0, help_text="rows written")
    out_dir = models.CharField(max_length=1000)
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]
