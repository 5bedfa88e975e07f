"""Reading items for the browser, review mode, the API and Label Studio pushes: one filter, one pager.

Pages use keyset pagination on (sort value, id): page 1000 costs what page 1 costs. NULL sort values
(unscored items) sort as -1 through a COALESCE that has its own index (see pools.Item.Meta.indexes).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import F, FloatField, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from lookfirst.pools.models import AnswerType, Bucket, Item, Pool

SORTS = {
    "id": ("id", False), "-id": ("id", True),
    "pass_rate": ("pass_rate", False), "-pass_rate": ("pass_rate", True),
    "clip_sim": ("clip_sim", False), "-clip_sim": ("clip_sim", True),
    "confidence": ("bucket_confidence", False), "-confidence": ("bucket_confidence", True),
}
PAGE_SIZE = 50


class FilterError(ValueError):
    pass


@dataclass
class ItemFilter:
    bucket: list[str] = field(default_factory=list)
    answer_type: list[str] = field(default_factory=list)
    source: str = ""
    pass_min: float | None = None
    pass_max: float | None = None
    clip_min: float | None = None
    clip_max: float | None = None
    pct_min: float | None = None
    pct_max: float | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    has_answer: str = ""  # "yes" | "no"
    pseudo: str = ""  # "yes": pseudo-labelled, not yet accepted
    reviewed: str = ""  # "yes" | "no"
    near_dup: str = ""  # "yes"
    excluded: str = ""  # "" hides excluded items, "only" shows only them, "all" shows both
    tag: str = ""
    q: str = ""
    sort: str = "id"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ItemFilter":
        """Parse URL parameters (a QueryDict or a plain dict); bad values raise FilterError naming the field."""
        out = cls()
        getlist = params.getlist if hasattr(params, "getlist") else (
            lambda k: params.get(k) if isinstance(params.get(k), list) else ([params[k]] if k in params else []))
        for f in fields(cls):
            if f.name in ("bucket", "answer_type"):
                values = [v for raw in getlist(f.name) for v in str(raw).split(",") if v]
                allowed = Bucket.values if f.name == "bucket" else AnswerType.values
                bad = [v for v in values if v not in allowed]
                if bad:
                    raise FilterError(f"{f.name}: unknown value {bad[0]!r}; known: {', '.join(allowed)}")
                setattr(out, f.name, values)
                continue
            raw = params.get(f.name)
            if raw in (None, ""):
                continue
            if f.type == "float | None":
                try:
                    setattr(out, f.name, float(raw))
                except (TypeError, ValueError):
                    raise FilterError(f"{f.name}: expected a number, got {raw!r}") from None
            else:
                setattr(out, f.name, str(raw))
        if out.sort not in SORTS:
            raise FilterError(f"sort: unknown value {out.sort!r}; known: {', '.join(SORTS)}")
        return out

    def as_params(self) -> dict[str, str]:
        params = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, "", []) or (f.name == "sort" and value == "id"):
                continue
            params[f.name] = ",".join(value) if isinstance(value, list) else str(value)
        return params


def items_filtered(*, pool: Pool, flt: ItemFilter) -> QuerySet[Item]:
    qs = Item.objects.filter(pool=pool)
    if flt.excluded == "only":
        qs = qs.filter(excluded=True)
    elif flt.excluded != "all":
        qs = qs.filter(excluded=False)
    if flt.bucket:
        qs = qs.filter(bucket__in=flt.bucket)
    if flt.answer_type:
        qs = qs.filter(answer_type__in=flt.answer_type)
    if flt.source:
        qs = qs.filter(source=flt.source)
    for name, column, op in (("pass_min", "pass_rate", "gte"), ("pass_max", "pass_rate", "lte"),
                             ("clip_min", "clip_sim", "gte"), ("clip_max", "clip_sim", "lte"),
                             ("pct_min", "clip_pct", "gte"), ("pct_max", "clip_pct", "lte"),
                             ("conf_min", "bucket_confidence", "gte"), ("conf_max", "bucket_confidence", "lte")):
        value = getattr(flt, name)
        if value is not None:
            qs = qs.filter(**{f"{column}__{op}": value})
    if flt.has_answer == "yes":
        qs = qs.filter(answer__isnull=False)
    elif flt.has_answer == "no":
        qs = qs.filter(answer__isnull=True)
    if flt.pseudo == "yes":
        qs = qs.filter(answer__isnull=True, pseudo_answer__isnull=False)
    if flt.reviewed in ("yes", "no"):
        qs = qs.filter(reviewed=flt.reviewed == "yes")
    if flt.near_dup == "yes":
        qs = qs.filter(near_dup_group__isnull=False)
    if flt.tag:
        qs = qs.filter(tags__contains=[flt.tag])
    if flt.q:
        qs = qs.annotate(search=SearchVector("question", config="simple")).filter(
            search=SearchQuery(flt.q, config="simple"))
    return qs


def _sort_expression(column: str, text_search: bool = False):
    if column == "id":
        # With a text search, "id + 0" keeps the planner off the primary-key order (which it would walk,
        # filtering every row, for a rare word) and on the full-text GIN index, then a top-N sort.
        return F("id") + Value(0) if text_search else F("id")
    return Coalesce(column, Value(-1.0), output_field=FloatField())


def encode_cursor(value: float | int, item_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, item_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        value, item_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(value), int(item_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise FilterError("after: not a valid page cursor") from None


@dataclass(frozen=True)
class Page:
    items: list[Item]
    next_cursor: str | None
    filter: ItemFilter


def items_page(*, pool: Pool, flt: ItemFilter, after: str | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of the filtered items, in sort order, after the cursor of the previous page."""
    column, descending = SORTS[flt.sort]
    qs = items_filtered(pool=pool, flt=flt).annotate(sort_key=_sort_expression(column, bool(flt.q)))
    if after:
        value, last_id = decode_cursor(after)
        if descending:
            qs = qs.filter(Q(sort_key__lt=value) | Q(sort_key=value, id__lt=last_id))
        else:
            qs = qs.filter(Q(sort_key__gt=value) | Q(sort_key=value, id__gt=last_id))
    order = ("-sort_key", "-id") if descending else ("sort_key", "id")
    rows = list(qs.order_by(*order)[: size + 1])
    next_cursor = encode_cursor(rows[size - 1].sort_key, rows[size - 1].pk) if len(rows) > size else None
    return Page(rows[:size], next_cursor, flt)
