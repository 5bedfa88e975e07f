"""Ingest throughput: our ingest vs a raw PostgreSQL COPY of the same rows, side by side in one run.

    .venv/bin/python bench/ingest.py --items 100000 [--distinct-images 10000]

Both sides start from the same EasyR1 jsonl (small PNGs beside it). "Raw COPY" parses the jsonl and
COPYs the rows into a copy of the items table: no image checks, no dedupe, no per-row errors. Ours
does all of that (decode-check every image, store it by sha256, dedupe, report errors). The images
carry a per-run nonce, so ours meets them as new (a first ingest), and the run removes its pool,
items and images afterwards, so runs on one database stay comparable. A third line COPYs the same
rows into a table with pools_item's indexes and constraints: the floor under any ingest into it. A
fourth stores the distinct image files alone, the way ours does (one file each, written by the same
threads): the floor under any ingest that keeps one file per image. The page cache is flushed before
each side. On a disk mounted with `discard`, creating files right after many were deleted (an earlier
run's clean-up) costs several times more kernel time; run it twice and keep the second.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, git_commit  # noqa: E402


def png_bytes(color: tuple[int, int, int], note: bytes, size: int = 24) -> bytes:
    """A solid RGB PNG with a tEXt note, written directly: PIL takes ~10x longer per image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    scanlines = (b"\x00" + bytes(color) * size) * size
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"bench\x00" + note) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b""))


def write_source(folder: Path, items: int, distinct: int) -> Path:
    images = folder / "images"
    images.mkdir(parents=True)
    nonce = uuid.uuid4().hex.encode()
    for i in range(distinct):
        (images / f"{i}.png").write_bytes(png_bytes((i % 256, (i // 256) % 256, (i // 65536) % 256), nonce))
    path = folder / "train.jsonl"
    with open(path, "w") as out:
        for i in range(items):
            out.write(json.dumps({"problem": f"<image>How many shapes are in picture {i}?", "answer": str(i % 7),
                                  "images": [f"images/{i % distinct}.png"], "key_words": ["shape"]}) + "\n")
    return path


def raw_copy(path: Path, like: str = "INCLUDING DEFAULTS INCLUDING IDENTITY", unlogged: bool = True) -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute(f"CREATE {'UNLOGGED ' if unlogged else ''}TABLE bench_copy (LIKE pools_item {like})")
        with cursor.copy("COPY bench_copy (pool_id, image_shas, question, answer, answer_type, key_words, source, "
                         "source_row, metadata, content_key, excluded, version, created_at, updated_at) "
                         "FROM STDIN") as copy:
            with open(path) as fh:
                for n, line in enumerate(fh, 1):
                    row = json.loads(line)
                    copy.write_row((1, row["images"], row["problem"], row["answer"], "number", row["key_words"],
                                    "bench", n, "{}", hashlib.sha256(line.encode()).hexdigest(), False, 1,
                                    "2026-01-01", "2026-01-01"))
        cursor.execute("DROP TABLE bench_copy")
    return time.perf_counter() - start


def store_files(folder: Path, distinct: int) -> float:
    """The distinct images written to a fresh media folder with ingest's own writer, 4 threads, no database."""
    from concurrent.futures import ThreadPoolExecutor

    from lookfirst.ingest import run_images
    from lookfirst.pools.models import image_relative_path

    files = []
    for i in range(distinct):
        data = (folder / "src" / "images" / f"{i}.png").read_bytes()
        files.append((str(folder / "floor" / image_relative_path(hashlib.sha256(data).hexdigest(), "png")), data))
    os.sync()
    start = time.perf_counter()
    threads = run_images.STORE_THREADS
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run_images._store_files, [files[k::threads] for k in range(threads)]))
    return time.perf_counter() - start


def ours(path: Path) -> tuple[float, int, str, dict[str, float]]:
    """Our ingest, timed, with the CPU seconds it used: this process (user, kernel) and its PostgreSQL backend."""
    from django.db import connection

    from lookfirst.ingest import services

    pool_name = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    os.sync()
    before, backend_before = os.times(), _backend_cpu(backend)
    start = time.perf_counter()
    run = services.ingest_path(user=None, pool_name=pool_name, path=path)
    seconds = time.perf_counter() - start
    after, backend_after = os.times(), _backend_cpu(backend)
    cpu = {"user": after.user - before.user, "kernel": after.system - before.system,
           "postgres": backend_after - backend_before if backend_before is not None else float("nan")}
    return seconds, run.ingested, pool_name, cpu


def _backend_cpu(pid: int) -> float | None:
    """User + kernel CPU seconds of a local PostgreSQL backend (None when it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def remove_pool(pool_name: str) -> None:
    """The bench pool, its items and runs, and the images only it used (their shas carry this run's nonce)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM pools_pool WHERE name = %s", [pool_name])
        found = cursor.fetchone()
        if found is None:
            return
        pool_id = found[0]
        cursor.execute("DELETE FROM pools_image WHERE sha256 IN "
                       "(SELECT DISTINCT unnest(image_shas) FROM pools_item WHERE pool_id = %s)", [pool_id])
        cursor.execute("DELETE FROM pools_item WHERE pool_id = %s", [pool_id])
        cursor.execute("DELETE FROM ingest_ingesterror WHERE run_id IN "
                       "(SELECT id FROM ingest_ingestrun WHERE pool_id = %s)", [pool_id])
        cursor.execute("DELETE FROM ingest_ingestrun WHERE pool_id = %s", [pool_id])
        cursor.execute("DELETE FROM pools_pool WHERE id = %s", [pool_id])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--distinct-images", type=int, default=None, help="default: one image per item")
    args = parser.parse_args()
    django_setup()
    from django.conf import settings

    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    settings.MEDIA_ROOT = folder / "media"
    distinct = min(args.distinct_images or args.items, args.items)
    pool_name = ""
    try:
        start = time.perf_counter()
        path = write_source(folder / "src", args.items, distinct)
        build_s = time.perf_counter() - start
        os.sync()
        copy_s = raw_copy(path)
        indexed_s = raw_copy(path, like="INCLUDING ALL", unlogged=False)
        files_s = store_files(folder, distinct)
        ours_s, ingested, pool_name, cpu = ours(path)
    finally:
        if pool_name:
            remove_pool(pool_name)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"commit {git_commit()} · {args.items:,} items · {distinct:,} distinct 24x24 PNGs "
          f"(dataset written in {build_s:.1f}s)")
    print(f"{'':34}{'seconds':>10}{'rows/s':>12}")
    print(f"{'raw COPY (no checks)':34}{copy_s:10.2f}{args.items / copy_s:12,.0f}")
    print(f"{'raw COPY, pools_item indexes':34}{indexed_s:10.2f}{args.items / indexed_s:12,.0f}")
    print(f"{'store the image files alone':34}{files_s:10.2f}{distinct / files_s:12,.0f} files/s")
    print(f"{'LookFirst ingest':34}{ours_s:10.2f}{args.items / ours_s:12,.0f}")
    cores = os.cpu_count() or 1
    total = cpu["user"] + cpu["kernel"] + cpu["postgres"]
    print(f"CPU of our ingest: Python {cpu['user']:.2f}s user + {cpu['kernel']:.2f}s kernel, its PostgreSQL backend "
          f"{cpu['postgres']:.2f}s; on {cores} cores no overlap could finish it under {total / cores:.2f}s")
    print(f"ratio ours/COPY: {copy_s / ours_s:.2f}  (goal >= 0.5); "
          f"vs COPY with pools_item indexes: {indexed_s / ours_s:.2f}; ingested {ingested:,}")


if __name__ == "__main__":
    main()
