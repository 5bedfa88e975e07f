from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from lookfirst.pools.models import Pool


def pool_list_with_counts() -> QuerySet[Pool]:
    return Pool.objects.annotate(
        item_count=Count("items", filter=Q(items__excluded=False)),
        excluded_count=Count("items", filter=Q(items__excluded=True)),
    ).order_by("name")


def pool_answer_type_counts(*, pool: Pool) -> dict[str, int]:
    rows = pool.items.filter(excluded=False).values("answer_type").annotate(n=Count("id")).order_by("answer_type")
    return {r["answer_type"]: r["n"] for r in rows}


def pool_source_counts(*, pool: Pool) -> dict[str, int]:
    rows = pool.items.filter(excluded=False).values("source").annotate(n=Count("id")).order_by("-n")[:20]
    return {r["source"]: r["n"] for r in rows}
