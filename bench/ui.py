"""Curation UI server time at scale: item browser across filters and deep pages, item detail, dashboard.

    .venv/bin/python bench/ui.py --items 100000 [--repeat 20]
    .venv/bin/python bench/ui.py --items 1000000 --repeat 10

Builds a pool of N scored items straight into PostgreSQL (COPY), then times full Django requests
(view + queries + template) in-process, and the bare queries peers.md compares against FiftyOne.
Goals (issue 6): browser p95 <= 150 ms, item detail p95 <= 100 ms.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, git_commit  # noqa: E402

WORDS = "red blue green circle square triangle how many what colour total sides more than which".split()


def build_pool(n: int):
    from django.db import connection

    from lookfirst.pools.models import Image, Pool

    name = f"bench-ui-{n}"
    pool = Pool.objects.filter(name=name).first()
    if pool is not None and pool.items.count() == n:
        return pool
    if pool is not None:
        raise SystemExit(f"pool {name} exists with another size; drop the bench database")
    pool = Pool.objects.create(name=name)
    Image.objects.get_or_create(sha256="0" * 64, defaults=dict(width=112, height=112, format="png", size_bytes=100))
    rng = random.Random(0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY pools_item (pool_id, image_shas, question, answer, answer_type, key_words, source, source_row, "
            "metadata, content_key, excluded, version, created_at, updated_at, bucket, bucket_source, bucket_policy, "
            "bucket_confidence, pass_rate, n_correct, n_samples, clip_sim, clip_pct, reviewed, tags) FROM STDIN"
        ) as copy:
            for i in range(n):
                k = rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8])
                bucket = "easy" if k == 8 else "hard" if k == 0 else "medium"
                words = " ".join(rng.choice(WORDS) for _ in range(6))
                if i % 5000 == 0:
                    words += " zebra"  # a rare word for text search
                copy.write_row((pool.pk, ["0" * 64], f"<image>{words} {i}?", str(k), "number", ["red"],
                                f"source-{i % 4}", i + 1, "{}", hashlib.sha256(str(i).encode()).hexdigest(), False, 1,
                                "2026-01-01", "2026-01-01", bucket, "scored", "pebr", rng.random(), k / 8, k, 8,
                                rng.uniform(0.0, 0.5), rng.random(), rng.random() < 0.3, []))
    # What autovacuum does on a live server: sets the visibility map, so counts are index-only scans.
    connection.ensure_connection()
    old = connection.connection.autocommit
    connection.connection.autocommit = True
    with connection.connection.cursor() as raw:
        raw.execute("VACUUM ANALYZE pools_item")
    connection.connection.autocommit = old
    print(f"built {n:,} items in {time.perf_counter() - started:.1f} s")
    return pool


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - start))
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    django_setup()
    from django.test import Client

    from lookfirst.curation.selectors import ItemFilter, items_filtered, items_page
    from lookfirst.pools import selectors as pool_selectors
    from lookfirst.pools.models import Item

    pool = build_pool(args.items)
    client = Client()
    from django.contrib.auth import get_user_model

    viewer, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    from django.contrib.auth.models import Group

    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(viewer)
    base = f"/pools/{pool.name}/items/"
    # a cursor 40,000 items deep in id order, like FiftyOne's deep page
    deep_id = Item.objects.filter(pool=pool).order_by("id").values_list("id", flat=True)[min(40_000, args.items - 60)]
    from lookfirst.curation.selectors import encode_cursor

    deep = encode_cursor(deep_id, deep_id)
    pages = {
        "first page, bucket=medium sorted by CLIP": f"{base}?bucket=medium&sort=-clip_sim",
        "deep page (40,000 in)": f"{base}?after={deep}",
        "bucket + pass range + CLIP pct + source, sorted": f"{base}?bucket=medium&pass_min=0.25&pass_max=0.75&pct_max=0.5&source=source-1&sort=-clip_sim",
        "text search, rare word": f"{base}?q=zebra",
        "low-confidence Medium, sorted by confidence": f"{base}?bucket=medium&conf_max=0.6&sort=confidence",
    }
    print(f"commit {git_commit()} · {args.items:,} items · {args.repeat} requests each · ms (median / p95)")
    from django.http import QueryDict

    for label, url in pages.items():
        assert client.get(url).status_code == 200, url
        med, p95 = timed(lambda: client.get(url), args.repeat)
        print(f"  browser  {label:52} {med:7.1f} / {p95:7.1f}")
        params = QueryDict(url.split("?", 1)[1])
        flt = ItemFilter.from_params(params)
        med, p95 = timed(lambda: items_page(pool=pool, flt=flt, after=params.get("after")), args.repeat)
        print(f"    query only (the page of 50)                                  {med:7.1f} / {p95:7.1f}")
    item = Item.objects.filter(pool=pool).order_by("id")[args.items // 2]
    med, p95 = timed(lambda: client.get(f"/items/{item.pk}/"), args.repeat)
    print(f"  detail   {'one item by id (full page)':52} {med:7.1f} / {p95:7.1f}")
    med, p95 = timed(lambda: client.get(f"/pools/{pool.name}/"), max(3, args.repeat // 4))
    print(f"  dashboard{' counts + 3 histograms + runs (full page)':53} {med:7.1f} / {p95:7.1f}")
    queries = {
        "count of one bucket": lambda: items_filtered(pool=pool, flt=ItemFilter(bucket=["medium"])).count(),
        "counts per bucket": lambda: pool_selectors.pool_bucket_totals(pool=pool),
        "counts per bucket x source (dashboard)": lambda: pool_selectors.pool_bucket_counts(pool=pool),
        "20-bin pass-rate histogram": lambda: pool_selectors.pool_histogram(pool=pool, column="pass_rate"),
    }
    for label, fn in queries.items():
        med, p95 = timed(fn, args.repeat)
        print(f"  query    {label:52} {med:7.1f} / {p95:7.1f}")


if __name__ == "__main__":
    main()
