from __future__ import annotations

from django.db import connection
from django.db.models import Count, Q, QuerySet

from lookfirst.pools.models import Item, Pool


def pool_list_with_counts() -> QuerySet[Pool]:
    return Pool.objects.annotate(
        item_count=Count("items", filter=Q(items__excluded=False)),
        excluded_count=Count("items", filter=Q(items__excluded=True)),
        easy=Count("items", filter=Q(items__excluded=False, items__bucket="easy")),
        medium=Count("items", filter=Q(items__excluded=False, items__bucket="medium")),
        hard=Count("items", filter=Q(items__excluded=False, items__bucket="hard")),
    ).order_by("name")


def pool_answer_type_counts(*, pool: Pool) -> dict[str, int]:
    rows = pool.items.filter(excluded=False).values("answer_type").annotate(n=Count("id")).order_by("answer_type")
    return {r["answer_type"]: r["n"] for r in rows}


def pool_source_counts(*, pool: Pool) -> dict[str, int]:
    rows = pool.items.filter(excluded=False).values("source").annotate(n=Count("id")).order_by("-n")[:20]
    return {r["source"]: r["n"] for r in rows}


def pool_bucket_totals(*, pool: Pool) -> dict[str, int]:
    """{bucket: n} over kept items: an index-only scan of (pool, excluded, bucket)."""
    rows = Item.objects.filter(pool=pool, excluded=False).values("bucket").annotate(n=Count("id")).order_by()
    return {row["bucket"]: row["n"] for row in rows}


def pool_bucket_counts(*, pool: Pool) -> dict[str, dict[str, int]]:
    """{bucket: {bucket_source: n}} over the pool's kept items, in one query."""
    out: dict[str, dict[str, int]] = {}
    rows = (Item.objects.filter(pool=pool, excluded=False).values("bucket", "bucket_source")
            .annotate(n=Count("id")).order_by())
    for row in rows:
        out.setdefault(row["bucket"], {})[row["bucket_source"] or "none"] = row["n"]
    return out


def pool_histogram(*, pool: Pool, column: str, bins: int = 20, low: float = 0.0, high: float = 1.0) -> list[int]:
    """Counts of `column` in `bins` equal bins over [low, high] (the top edge falls in the last bin), one query."""
    if column not in {"pass_rate", "clip_sim", "clip_pct", "bucket_confidence"}:
        raise ValueError(f"no histogram for {column}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT LEAST(width_bucket({column}, %s, %s, %s), %s) AS b, count(*) FROM pools_item "
            f"WHERE pool_id = %s AND NOT excluded AND {column} IS NOT NULL GROUP BY b",
            [low, high, bins, bins, pool.pk],
        )
        counts = [0] * bins
        for bucket, n in cursor.fetchall():
            counts[min(max(bucket, 1), bins) - 1] += n
    return counts


def pool_near_duplicate_groups(*, pool: Pool, limit: int = 12) -> list[dict]:
    rows = (Item.objects.filter(pool=pool, near_dup_group__isnull=False).values("near_dup_group")
            .annotate(n=Count("id")).order_by("-n", "near_dup_group")[:limit])
    return [{"group": r["near_dup_group"], "size": r["n"]} for r in rows]
