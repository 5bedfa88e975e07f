from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


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
    """One image file, stored once by content under MEDIA_ROOT/images/ab/cd/<sha256>.<ext>."""

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
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{fmt.lower()}"


class AnswerType(models.TextChoices):
    FREE_TEXT = "free_text", "free text"
    NUMBER = "number", "number"
    MULTIPLE_CHOICE = "multiple_choice", "multiple choice"
    YES_NO = "yes_no", "yes / no"
    NONE = "none", "none"


class Item(models.Model):
    """One question about one or more images. Curation excludes items; nothing deletes them."""

    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="items")
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
    ingest_run = models.ForeignKey("ingest.IngestRun", null=True, on_delete=models.SET_NULL, related_name="items")
    excluded = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, help_text="optimistic lock for concurrent edits")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "content_key"], name="item_unique_content_per_pool")]
        indexes = [models.Index(fields=["pool", "id"], name="item_pool_id")]

    def __str__(self) -> str:
        return f"{self.pool_id}/{self.pk}"

    def images(self) -> list[Image]:
        found = {i.sha256: i for i in Image.objects.filter(sha256__in=self.image_shas)}
        return [found[s] for s in self.image_shas if s in found]
