from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator

from lookfirst.snapshots.rules import RULES


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text cannot contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
PoolName = Annotated[str, AfterValidator(_no_nul), Field(min_length=1, max_length=100)]
Rule = Literal[tuple(RULES)]  # type: ignore[valid-type]


class Error(Schema):
    detail: str


class PoolOut(Schema):
    name: str
    description: str
    created_at: datetime
    item_count: int
    excluded_count: int


class PoolDetailOut(PoolOut):
    buckets: dict[str, int]
    answer_types: dict[str, int]
    sources: dict[str, int]


class ItemOut(Schema):
    id: int
    pool: str
    question: str
    answer: str | None
    answer_type: str
    key_words: list[str]
    description: str | None
    image_shas: list[str]
    source: str
    source_row: int
    bucket: str
    bucket_source: str
    bucket_policy: str
    bucket_confidence: float | None
    pass_rate: float | None
    n_correct: int | None
    n_samples: int | None
    clip_sim: float | None
    clip_pct: float | None
    pseudo_answer: str | None
    pseudo_agreement: float | None
    near_dup_group: int | None
    reviewed: bool
    excluded: bool
    tags: list[str]
    version: int


class ItemPageOut(Schema):
    items: list[ItemOut]
    next: str | None = Field(description="cursor of the next page (pass it as `after`), null on the last page")


class ItemQuery(Schema):
    """The item browser's filters (lookfirst.curation.selectors.ItemFilter) plus the keyset cursor."""

    bucket: Text | None = Field(None, description="comma-separated: unscored, easy, medium, hard")
    answer_type: Text | None = Field(None, description="comma-separated answer types")
    source: Text | None = None
    pass_min: float | None = None
    pass_max: float | None = None
    clip_min: float | None = None
    clip_max: float | None = None
    pct_min: float | None = None
    pct_max: float | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    has_answer: Literal["yes", "no"] | None = None
    pseudo: Literal["yes"] | None = None
    reviewed: Literal["yes", "no"] | None = None
    near_dup: Literal["yes"] | None = None
    excluded: Literal["only", "all"] | None = None
    tag: Text | None = None
    q: Text | None = Field(None, description="full-text search in questions")
    sort: Literal["id", "-id", "pass_rate", "-pass_rate", "clip_sim", "-clip_sim", "confidence",
                  "-confidence"] = "id"
    after: Text | None = Field(None, description="cursor from the previous page")
    size: int = Field(50, ge=1, le=500)


class ScoringRunIn(Schema):
    pool: PoolName
    model_spec: Annotated[Text, Field(min_length=1, max_length=500)]
    clip_spec: Annotated[Text, Field(max_length=500)] = ""
    n_samples: int = Field(8, ge=1, le=1024)
    temperature: float = Field(1.2, ge=0, le=10)
    top_p: float = Field(0.99, gt=0, le=1)
    max_new_tokens: int = Field(2048, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**62)
    policy: Annotated[Text, Field(max_length=60)] = "pebr"
    adaptive: bool = False
    adaptive_confidence: float | None = Field(0.9, ge=0.5, lt=1)


class ScoringRunOut(Schema):
    id: int
    pool: str
    model_spec: str
    clip_spec: str
    n_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    policy: str
    adaptive: bool
    adaptive_confidence: float | None
    state: str
    total: int
    done: int
    failed: int
    progress: float
    summary: dict[str, Any]
    error: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SnapshotIn(Schema):
    pool: PoolName
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    parent: Id | None = None
    description: Annotated[Text, Field(max_length=10_000)] = ""


class SnapshotOut(Schema):
    id: int
    pool: str
    name: str
    version: int
    parent: int | None
    description: str
    item_count: int
    counts: dict[str, Any]
    manifest_hash: str
    created_by: str | None
    created_at: datetime


class FieldChange(Schema):
    before: Any
    after: Any


class ChangedItem(Schema):
    item_id: int
    fields: dict[str, FieldChange]


class DiffOut(Schema):
    a: int
    b: int
    added: list[int]
    removed: list[int]
    changed: list[ChangedItem]


class ExportIn(Schema):
    snapshot: Id
    format: Literal["trl", "easyr1", "verl", "jsonl"]
    rule: Rule = "pebr-2stage"
    file_type: Literal["", "jsonl", "parquet"] = Field("", description="EasyR1 only: jsonl (default) or parquet")
    eval_seed: int = Field(0, ge=0, le=2**62)
    eval_fraction: float = Field(0.1, ge=0, lt=1)


class ExportOut(Schema):
    id: int
    snapshot: int
    format: str
    file_type: str
    rule: str
    eval_seed: int
    eval_fraction: float
    state: str
    total: int
    progress: int
    manifest: dict[str, Any] | None
    error: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
