from __future__ import annotations

from django.conf import settings
from django.db import models


class BucketPolicy(models.Model):
    """A bucket rule as data: ordered rules over the observed pass rate (first match wins).

    rules: [{"bucket": "easy", "min": 1.0, "max": 1.0, "min_exclusive": false, "max_exclusive": false}, ...]
    """

    name = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    rules = models.JSONField()
    sort = models.CharField(max_length=30, blank=True, help_text="'pass_rate_desc' sorts easy -> hard in exports")
    reference_n = models.PositiveIntegerField(default=8, help_text="samples per item the rule was written for")
    builtin = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class ScoringRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    pool = models.ForeignKey("pools.Pool", on_delete=models.PROTECT, related_name="scoring_runs")
    selection = models.JSONField(null=True, blank=True, help_text="item ids scored; null = the whole pool")
    model_spec = models.CharField(max_length=500)
    clip_spec = models.CharField(max_length=500, blank=True)
    n_samples = models.PositiveIntegerField(default=8)
    temperature = models.FloatField(default=1.2)
    top_p = models.FloatField(default=0.99)
    max_new_tokens = models.PositiveIntegerField(default=2048)
    seed = models.BigIntegerField(default=0)
    verifier = models.CharField(max_length=60, default="trainer.verify/v1")
    policy = models.ForeignKey(BucketPolicy, on_delete=models.PROTECT)
    adaptive = models.BooleanField(default=False)
    round_size = models.PositiveIntegerField(default=2)
    adaptive_confidence = models.FloatField(
        null=True, blank=True,
        help_text="adaptive runs: also stop an item once its final bucket has at least this probability under "
                  "the pass-rate prior fitted on the run's items; null = stop only when the bucket is certain")
    chunk_size = models.PositiveIntegerField(default=32)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    generations = models.PositiveBigIntegerField(default=0, help_text="answers sampled in this run")
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        return 1.0 if self.state == self.State.DONE else (self.done / self.total if self.total else 0.0)

    def settings_key(self) -> str:
        """Runs with the same key pool their samples: rescoring adds to an item's record."""
        return f"{self.model_spec}|T={self.temperature}|p={self.top_p}|max={self.max_new_tokens}|{self.verifier}"


class ItemScore(models.Model):
    """One item scored by one run. Unique per (run, item): a task that runs twice writes once."""

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="scores")
    item = models.ForeignKey("pools.Item", on_delete=models.PROTECT, related_name="scores")
    n_samples = models.PositiveIntegerField(default=0)
    n_correct = models.PositiveIntegerField(null=True, help_text="null when the item has no answer")
    pass_rate = models.FloatField(null=True)
    wilson_low = models.FloatField(null=True)
    wilson_high = models.FloatField(null=True)
    samples = models.JSONField(default=list, help_text="[{text, extracted, correct}] for every sampled answer")
    majority_answer = models.TextField(null=True)
    majority_agreement = models.FloatField(null=True)
    clip_question = models.FloatField(null=True)
    clip_answer = models.FloatField(null=True)
    clip_description = models.FloatField(null=True)
    error = models.TextField(blank=True, help_text="why this item could not be scored")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="itemscore_once_per_run")]


class ClipEmbedding(models.Model):
    """A stored open_clip embedding (float32 bytes) of an image or a text, per CLIP model."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        TEXT = "text"

    model_key = models.CharField(max_length=500)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    key = models.CharField(max_length=64, help_text="image sha256, or sha256 of the text")
    vector = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_key", "kind", "key"], name="embedding_unique")]
