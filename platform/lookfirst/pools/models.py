from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce


class Pool(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    """One image file, stored once by content under MEDIA_ROOT/images/ab/<sha256>.<ext>."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=16)
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def relative_path(self) -> str:
        return image_relative_path(self.sha256, self.format)


def image_relative_path(sha256: str, fmt: str) -> str:
    """One level of 256 folders, as git does: a second level meant a new folder for most of the first
    100,000 images, and creating a folder costs more than the file in it."""
    return f"images/{sha256[:2]}/{sha256}.{fmt.lower()}"


class AnswerType(models.TextChoices):
    FREE_TEXT = "free_text", "free text"
    NUMBER = "number", "number"
    MULTIPLE_CHOICE = "multiple_choice", "multiple choice"
    YES_NO = "yes_no", "yes / no"
    NONE = "none", "none"


class Bucket(models.TextChoices):
    UNSCORED = "unscored", "unscored"
    EASY = "easy", "Easy"
    MEDIUM = "medium", "Medium"
    HARD = "hard", "Hard"


class BucketSource(models.TextChoices):
    NONE = "", "none"
    SCORED = "scored", "scored"
    CURATOR = "curator", "curator"
    PSEUDO_LABEL = "pseudo_label", "pseudo-label"


class Item(models.Model):
    """One question about one or more images. Curation excludes items; nothing deletes them."""

    # No index of its own: item_pool_id (pool, id) and the unique (pool, content_key) lead with it.
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="items", db_index=False)
    image_shas = ArrayField(models.CharField(max_length=64), help_text="images in placeholder order")
    question = models.TextField()
    answer = models.TextField(null=True, blank=True)
    answer_type = models.CharField(max_length=20, choices=AnswerType.choices)
    key_words = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    description = models.TextField(null=True, blank=True)
    source = models.CharField(max_length=500, help_text="file or upload the item came from")
    source_row = models.PositiveIntegerField()
    metadata = models.JSONField(default=dict, blank=True, help_text="source columns we do not map")
    content_key = models.CharField(max_length=64, help_text="sha256 of images + question: duplicates share it")
    # Provenance only, so no constraint in the database: checking it cost a third of an ingest's COPY per
    # row. Django still sets it to NULL when a run is deleted.
    ingest_run = models.ForeignKey("ingest.IngestRun", null=True, on_delete=models.SET_NULL, related_name="items",
                                   db_constraint=False)
    excluded = models.BooleanField(default=False)
    # Current curated state, denormalised from scores and curator actions so browsing stays index-only.
    bucket = models.CharField(max_length=10, choices=Bucket.choices, db_default=Bucket.UNSCORED.value)
    bucket_source = models.CharField(max_length=12, choices=BucketSource.choices, db_default="", blank=True)
    bucket_policy = models.CharField(max_length=60, blank=True, db_default="")
    bucket_confidence = models.FloatField(null=True)
    pass_rate = models.FloatField(null=True)
    n_correct = models.PositiveIntegerField(null=True)
    n_samples = models.PositiveIntegerField(null=True)
    wilson_low = models.FloatField(null=True)
    wilson_high = models.FloatField(null=True)
    clip_sim = models.FloatField(null=True, help_text="image-question cosine of the latest CLIP scoring")
    clip_pct = models.FloatField(null=True, help_text="percentile of clip_sim within the item's source")
    pseudo_answer = models.TextField(null=True, blank=True, help_text="majority-vote answer of an unlabelled item")
    pseudo_agreement = models.FloatField(null=True)
    near_dup_group = models.BigIntegerField(null=True, help_text="id of the first item of its near-duplicate group")
    reviewed = models.BooleanField(db_default=False)
    tags = ArrayField(models.CharField(max_length=60), db_default=[], blank=True)
    version = models.PositiveIntegerField(default=1, help_text="optimistic lock for concurrent edits")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "content_key"], name="item_unique_content_per_pool")]
        # Keyset pages sort by (COALESCE(column, -1), id) within a pool; each sort has its index.
        indexes = [
            models.Index(fields=["pool", "id"], name="item_pool_id"),
            models.Index(fields=["pool", "excluded", "bucket", "id"], name="item_pool_kept_bucket"),
            # Counts, histograms: index-only scans over (pool, kept, value).
            models.Index(fields=["pool", "excluded", "pass_rate"], name="item_pool_kept_passrate"),
            models.Index(fields=["pool", "excluded", "clip_sim"], name="item_pool_kept_clip"),
            models.Index(F("pool"), Coalesce("pass_rate", Value(-1.0)), F("id"), name="item_pool_passrate"),
            models.Index(F("pool"), Coalesce("clip_sim", Value(-1.0)), F("id"), name="item_pool_clip"),
            models.Index(F("pool"), Coalesce("bucket_confidence", Value(-1.0)), F("id"), name="item_pool_conf"),
            models.Index(F("pool"), F("bucket"), Coalesce("clip_sim", Value(-1.0)), F("id"),
                         name="item_pool_bucket_clip"),
            GinIndex(SearchVector("question", config="simple"), name="item_question_search"),
        ]

    def __str__(self) -> str:
        return f"{self.pool_id}/{self.pk}"

    def images(self) -> list[Image]:
        found = {i.sha256: i for i in Image.objects.filter(sha256__in=self.image_shas)}
        return [found[s] for s in self.image_shas if s in found]
