"""Export throughput: LookFirst's streamed export of a snapshot vs the same rows written directly with pyarrow.

Usage (from the repo root; the database is migrated and a synthetic pool is created on first use):

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/lookfirst_snapbench \\
        .venv/bin/python bench/export.py --items 100000 [--format trl|verl] [--images 1000] [--json]

Setup: a pool of N small items (bulk COPY, one of --images distinct 32 x 32 PNGs each, Easy/Medium/Hard
mixed) is frozen as a new snapshot (timed). Then, each in a fresh child process so peak memory is its own:

- lookfirst: `export_create` + `export_execute` with rule pebr-2stage (per-split parquet files, keyset
  batches of 1,000 items, row groups of at most 1,024 rows or 64 MB, sha256 of every file, manifest);
- pyarrow: one SQL query for the same kept rows, image bytes read, the same row builder, then one
  `pa.Table.from_pylist` and one `pq.write_table` with the same writer options (all rows in memory).

Printed: rows/s of each, the ratio (goal >= 0.5x), and peak RSS of each process (ru_maxrss) above its
RSS after imports. Images live under $LOOKFIRST_HOME/media.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "platform")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookfirst.settings.base")

BUCKETS = (("easy", 1.0, 8), ("medium", 0.5, 4), ("medium", 0.25, 2), ("hard", 0.0, 0))


def _django() -> None:
    from lookfirst.runtime.services import ensure_services

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # never used: exports run in-process here

    ensure_services()
    import django

    django.setup()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def synthetic_pool(items: int, images: int):
    """A pool named bench-export-<items>, created once with COPY; later runs reuse it."""
    from django.conf import settings
    from django.db import connection, transaction
    from PIL import Image as PILImage

    from lookfirst.pools.models import Image, Pool, image_relative_path

    name = f"bench-export-{items}"
    pool = Pool.objects.filter(name=name).first()
    if pool is not None and pool.items.count() == items:
        return pool, False
    media = Path(settings.MEDIA_ROOT)
    shas = []
    for i in range(images):
        buffer = io.BytesIO()
        PILImage.new("RGB", (32, 32), (i % 256, (i // 256) % 256, 200)).save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        path = media / image_relative_path(sha, "png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        shas.append((sha, len(data)))
    with transaction.atomic():
        Image.objects.bulk_create([Image(sha256=sha, width=32, height=32, format="png", size_bytes=size)
                                   for sha, size in shas], ignore_conflicts=True)
        pool = Pool.objects.create(name=name, description="synthetic rows for bench/export.py")
        columns = ("pool_id, image_shas, question, answer, answer_type, key_words, description, source, source_row, "
                   "metadata, content_key, excluded, version, created_at, updated_at, bucket, bucket_source, "
                   "bucket_policy, bucket_confidence, pass_rate, n_correct, n_samples, clip_sim, clip_pct")
        with connection.cursor() as cursor, cursor.copy(f"COPY pools_item ({columns}) FROM STDIN") as copy:
            for i in range(items):
                bucket, rate, k = BUCKETS[i % len(BUCKETS)]
                copy.write_row((pool.pk, [shas[i % images][0]], f"<image>What colour is shape number {i}?",
                                str(i % 7), "number", ["shape", f"k{i % 13}"], f"A shape, number {i}.", "bench",
                                i, "{}", f"bench-{i}", i % 50 == 0, 1, "2026-01-01T00:00:00Z",
                                "2026-01-01T00:00:00Z", bucket, "scored", "pebr", 0.5, rate, k, 8, 0.3, 0.5))
    return pool, True


def _warm_imports() -> None:
    """Load what pyarrow imports lazily (pandas), so neither timing pays for imports."""
    import pyarrow as pa

    pa.Table.from_pylist([{"x": 1}]).to_pandas()


def phase_export(snapshot_id: int, fmt: str, out: Path) -> dict:
    from lookfirst.snapshots import services
    from lookfirst.snapshots.models import Snapshot

    _warm_imports()
    start_rss = _rss_mb()
    snapshot = Snapshot.objects.get(pk=snapshot_id)
    t0 = time.perf_counter()
    created = services.export_create(user=None, snapshot=snapshot, fmt=fmt, rule="pebr-2stage", out_dir=out,
                                     enqueue=False)
    export = services.export_execute(export_id=created.pk)
    seconds = time.perf_counter() - t0
    if export.state != "done":
        raise SystemExit(f"export failed: {export.error}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"rows": export.total, "seconds": seconds, "bytes": size, "peak_rss_mb": _rss_mb(),
            "peak_above_start_mb": _rss_mb() - start_rss}


def phase_pyarrow(snapshot_id: int, fmt: str, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from django.conf import settings
    from django.db import connection

    from lookfirst.pools.models import image_relative_path
    from lookfirst.snapshots import formats
    from lookfirst.snapshots.models import FROZEN_FIELDS, Snapshot

    _warm_imports()
    start_rss = _rss_mb()
    spec = formats.format_spec(fmt)
    pool = Snapshot.objects.select_related("pool").get(pk=snapshot_id).pool.name
    media = Path(settings.MEDIA_ROOT)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(FROZEN_FIELDS)} FROM snapshots_snapshotitem WHERE snapshot_id = %s "
            "AND NOT excluded AND bucket IN ('easy', 'medium') ORDER BY item_id", [snapshot_id])
        fetched = cursor.fetchall()
        cursor.execute("SELECT sha256, format FROM pools_image WHERE sha256 IN (SELECT DISTINCT unnest(image_shas) "
                       "FROM snapshots_snapshotitem WHERE snapshot_id = %s)", [snapshot_id])
        exts = {sha: ext.lower() for sha, ext in cursor.fetchall()}
    rows = []
    for index, values in enumerate(fetched):
        item = dict(zip(FROZEN_FIELDS, values))
        images = [formats.ImageFile(sha, exts[sha]) for sha in item["image_shas"]]
        blobs = [(media / image_relative_path(image.sha256, image.ext)).read_bytes() for image in images]
        stage = "perception" if item["bucket"] == "easy" else "reasoning"
        rows.append(spec.build(item, images, blobs, stage=stage, split=stage, index=index, pool=pool))
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=spec.parquet_schema()), str(out / "all.parquet"),
                   **formats.PARQUET_OPTIONS)
    seconds = time.perf_counter() - t0
    return {"rows": len(rows), "seconds": seconds, "bytes": (out / "all.parquet").stat().st_size,
            "peak_rss_mb": _rss_mb(), "peak_above_start_mb": _rss_mb() - start_rss}


def _child(phase: str, snapshot_id: int, fmt: str, out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--snapshot", str(snapshot_id),
                             "--format", fmt, "--out", str(out)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=1000, help="distinct images the items share")
    parser.add_argument("--format", default="trl", choices=("trl", "verl"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", choices=("export", "pyarrow"), help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _django()

    if args.phase:
        measure = phase_export if args.phase == "export" else phase_pyarrow
        print(json.dumps(measure(args.snapshot, args.format, args.out)))
        return 0

    from django.core.management import call_command

    from lookfirst.snapshots import services

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    pool, created = synthetic_pool(args.items, args.images)
    populate = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshot = services.snapshot_create(user=None, pool=pool, name=f"bench {time.strftime('%Y-%m-%d %H:%M')}")
    snapshot_seconds = time.perf_counter() - t0

    work = Path(tempfile.mkdtemp(prefix="lookfirst-bench-export-"))
    try:
        ours = _child("export", snapshot.pk, args.format, work / "lookfirst")
        direct = _child("pyarrow", snapshot.pk, args.format, work / "pyarrow")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert ours["rows"] == direct["rows"], (ours, direct)
    ratio = (ours["rows"] / ours["seconds"]) / (direct["rows"] / direct["seconds"])
    figures = {"items": args.items, "format": args.format, "rows_exported": ours["rows"],
               "pool_created_s": round(populate, 2) if created else None,
               "snapshot_s": round(snapshot_seconds, 2), "lookfirst": ours, "pyarrow": direct,
               "ratio": round(ratio, 3)}
    print(f"pool {pool.name}: {args.items} items" + (f" (created in {populate:.1f} s)" if created else ""))
    print(f"snapshot v{snapshot.version}: {snapshot_seconds:.2f} s ({args.items / snapshot_seconds:,.0f} items/s)")
    print(f"{'':12}{'rows':>9}{'seconds':>10}{'rows/s':>10}{'MB out':>9}{'peak RSS MB':>13}{'above start':>13}")
    for label, r in (("lookfirst", ours), ("pyarrow", direct)):
        print(f"{label:12}{r['rows']:>9}{r['seconds']:>10.2f}{r['rows'] / r['seconds']:>10,.0f}"
              f"{r['bytes'] / 1e6:>9.1f}{r['peak_rss_mb']:>13.0f}{r['peak_above_start_mb']:>13.0f}")
    print(f"ratio lookfirst / pyarrow: {ratio:.2f}x (goal >= 0.5x)" + (" ok" if ratio >= 0.5 else " BELOW GOAL"))
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
