"""Ingest throughput: our ingest vs a raw PostgreSQL COPY of the same rows, side by side in one run.

    .venv/bin/python bench/ingest.py --items 100000 [--distinct-images 100000]

Both sides start from the same EasyR1 jsonl (small PNGs beside it). "Raw COPY" parses the jsonl and
COPYs the rows into a copy of the items table: no image checks, no dedupe, no per-row errors. Ours
does all of that (decode-check every image, store it by sha256, dedupe, report errors).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, git_commit  # noqa: E402


def write_source(folder: Path, items: int, distinct: int) -> Path:
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True)
    for i in range(distinct):
        buffer = io.BytesIO()
        Image.new("RGB", (24, 24), (i % 256, (i // 256) % 256, (i // 65536) % 256)).save(buffer, format="PNG")
        (images / f"{i}.png").write_bytes(buffer.getvalue())
    path = folder / "train.jsonl"
    with open(path, "w") as out:
        for i in range(items):
            out.write(json.dumps({"problem": f"<image>How many shapes are in picture {i}?", "answer": str(i % 7),
                                  "images": [f"images/{i % distinct}.png"], "key_words": ["shape"]}) + "\n")
    return path


def raw_copy(path: Path) -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute("CREATE UNLOGGED TABLE bench_copy (LIKE pools_item INCLUDING DEFAULTS INCLUDING IDENTITY)")
        with cursor.copy("COPY bench_copy (pool_id, image_shas, question, answer, answer_type, key_words, source, "
                         "source_row, metadata, content_key, excluded, version, created_at, updated_at) FROM STDIN") as copy:
            with open(path) as fh:
                for n, line in enumerate(fh, 1):
                    row = json.loads(line)
                    copy.write_row((1, row["images"], row["problem"], row["answer"], "number", row["key_words"],
                                    "bench", n, "{}", hashlib.sha256(line.encode()).hexdigest(), False, 1,
                                    "2026-01-01", "2026-01-01"))
        cursor.execute("DROP TABLE bench_copy")
    return time.perf_counter() - start


def ours(path: Path) -> tuple[float, int]:
    import uuid

    from lookfirst.ingest import services

    start = time.perf_counter()
    run = services.ingest_path(user=None, pool_name=f"bench-ingest-{uuid.uuid4().hex[:8]}", path=path)
    return time.perf_counter() - start, run.ingested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--distinct-images", type=int, default=None, help="default: one image per item")
    args = parser.parse_args()
    django_setup()
    from django.conf import settings

    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    settings.MEDIA_ROOT = folder / "media"
    distinct = args.distinct_images or args.items
    try:
        path = write_source(folder / "src", args.items, distinct)
        copy_s = raw_copy(path)
        ours_s, ingested = ours(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"commit {git_commit()} · {args.items:,} items · {distinct:,} distinct 24x24 PNGs")
    print(f"{'':24}{'seconds':>10}{'rows/s':>12}")
    print(f"{'raw COPY (no checks)':24}{copy_s:10.2f}{args.items / copy_s:12,.0f}")
    print(f"{'LookFirst ingest':24}{ours_s:10.2f}{args.items / ours_s:12,.0f}")
    print(f"ratio ours/COPY: {copy_s / ours_s:.2f}  (goal >= 0.5); ingested {ingested:,}")


if __name__ == "__main__":
    main()
