"""Ingest: read a source in any supported format into a pool, row by row, losing nothing.

Every entry point (CLI, upload, demo) goes through `ingest_run_create` + `ingest_run_execute`.
Rows are read as a stream and written in batches through a COPY into a temporary table, then
one INSERT ... ON CONFLICT DO NOTHING: duplicates (same images and question in the pool) are
counted, not inserted, so running the same file twice adds nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.ingest.answers import answer_type_guess
from lookfirst.ingest.images import CheckedImage, ImageRejected, image_check
from lookfirst.ingest.models import IngestError, IngestRun
from lookfirst.ingest.readers import (
    FORMATS,
    RowError,
    SourceRow,
    UnknownFormatError,
    UnreadableSourceError,
    detect_format,
    read_source,
)
from lookfirst.pools.models import Image, Pool, image_relative_path

BATCH_ROWS = 500


@dataclass
class _Batch:
    items: list[tuple] = field(default_factory=list)
    images: dict[str, CheckedImage] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0


def pool_get_or_create(*, name: str, user=None) -> Pool:
    pool, _ = Pool.objects.get_or_create(name=name, defaults={"created_by": user})
    return pool


def ingest_run_create(
    *, user, pool: Pool, source: Path, source_name: str = "", fmt: str = "auto", images_dir: Path | None = None
) -> IngestRun:
    """Check permissions and the format name, and record a queued run. Nothing is read yet."""
    if user is not None:
        check_role(user, Role.CURATOR)
    if fmt != "auto" and fmt not in FORMATS:
        raise UnknownFormatError(f"unknown format {fmt!r}; known formats: auto, {', '.join(FORMATS)}")
    return IngestRun.objects.create(
        pool=pool,
        created_by=user,
        source=str(source),
        source_name=source_name or Path(source).name,
        requested_format=fmt,
        images_dir=str(images_dir or ""),
    )


def ingest_run_execute(*, run_id: int, progress: Callable[[IngestRun], None] | None = None) -> IngestRun:
    """Read the run's source into its pool. Safe to run again: it restarts the run from the top."""
    run = IngestRun.objects.select_related("pool").get(pk=run_id)
    if run.state == IngestRun.State.DONE:
        return run
    run.errors.all().delete()
    run.state, run.started_at, run.message = IngestRun.State.RUNNING, timezone.now(), ""
    run.rows_seen = run.ingested = run.duplicates = run.skipped = 0
    source = Path(run.source)
    try:
        run.format = run.requested_format if run.requested_format != "auto" else detect_format(source)
        run.rows_total = _estimate_rows(source)
        run.save()
        rows = read_source(source, run.format, Path(run.images_dir) if run.images_dir else None)
        for batch in _batches(rows):
            _write_batch(run, batch)
            run.save(update_fields=["rows_seen", "skipped", "duplicates", "ingested"])
            if progress:
                progress(run)
    except (UnknownFormatError, UnreadableSourceError) as exc:
        run.state, run.message, run.finished_at = IngestRun.State.FAILED, str(exc), timezone.now()
        run.save()
        return run
    run.ingested = run.items.count()
    run.duplicates = run.rows_seen - run.skipped - run.ingested
    run.state, run.finished_at = IngestRun.State.DONE, timezone.now()
    run.save()
    return run


def ingest_path(*, user, pool_name: str, path: Path, fmt: str = "auto", images_dir: Path | None = None,
                progress: Callable[[IngestRun], None] | None = None) -> IngestRun:
    """Create and run an ingest in this process (the CLI and the demo use this)."""
    pool = pool_get_or_create(name=pool_name, user=user)
    run = ingest_run_create(user=user, pool=pool, source=path.resolve(), source_name=str(path), fmt=fmt,
                            images_dir=images_dir.resolve() if images_dir else None)
    return ingest_run_execute(run_id=run.pk, progress=progress)


class _CheckedCache:
    """Images already checked in this run, by file path: VQA pools ask many questions about one image."""

    def __init__(self, max_bytes: int, max_pixels: int, size: int = 8192) -> None:
        self.max_bytes, self.max_pixels, self.size = max_bytes, max_pixels, size
        self.by_path: dict[Path, CheckedImage] = {}
        self.stored: set[str] = set()

    def check(self, ref) -> CheckedImage:
        if ref.path is not None and ref.path in self.by_path:
            return self.by_path[ref.path]
        checked = image_check(ref, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        if ref.path is not None:
            if len(self.by_path) >= self.size:
                self.by_path.pop(next(iter(self.by_path)))
            self.by_path[ref.path] = checked
        return checked


def _batches(rows: Iterable[SourceRow | RowError]) -> Iterable[_Batch]:
    batch = _Batch()
    cache = _CheckedCache(settings.LOOKFIRST_MAX_IMAGE_BYTES, settings.LOOKFIRST_MAX_IMAGE_PIXELS)
    for row in rows:
        batch.rows += 1
        if isinstance(row, RowError):
            batch.errors.append(row)
        else:
            _add_row(batch, row, cache)
        if batch.rows >= BATCH_ROWS:
            yield batch
            batch = _Batch()
    if batch.rows:
        yield batch


def _add_row(batch: _Batch, row: SourceRow, cache: _CheckedCache) -> None:
    if not row.question.strip():
        batch.errors.append(RowError(row.row, "question", "question is empty"))
        return
    if not row.images:
        batch.errors.append(RowError(row.row, "images", "row has no image"))
        return
    checked: list[CheckedImage] = []
    for index, ref in enumerate(row.images):
        try:
            checked.append(cache.check(ref))
        except ImageRejected as exc:
            batch.errors.append(RowError(row.row, f"images[{index}]", f"{exc} ({ref.name})"))
            return
    shas = [c.sha256 for c in checked]
    for image in checked:
        if image.sha256 not in cache.stored:
            batch.images.setdefault(image.sha256, image)
            cache.stored.add(image.sha256)
    metadata = dict(row.metadata)
    declared_type = metadata.pop("answer_type", None)
    content_key = hashlib.sha256(json.dumps([shas, row.question]).encode()).hexdigest()
    batch.items.append((
        shas, row.question, row.answer, answer_type_guess(row.answer, row.question, declared_type),
        list(row.key_words), row.description, row.row, json.dumps(metadata, default=str), content_key,
    ))


def _write_batch(run: IngestRun, batch: _Batch) -> None:
    _store_image_files(batch.images.values())
    with transaction.atomic(), connection.cursor() as cursor:
        if batch.images:
            Image.objects.bulk_create(
                [Image(sha256=i.sha256, width=i.width, height=i.height, format=i.format, size_bytes=len(i.data))
                 for i in batch.images.values()],
                ignore_conflicts=True,
            )
        if batch.items:
            _insert_items(cursor, run, batch.items)
        IngestError.objects.bulk_create(
            [IngestError(run=run, row=e.row, field=e.field, reason=e.reason) for e in batch.errors]
        )
    run.rows_seen += batch.rows
    run.skipped += len(batch.errors)
    inserted = run.items.count()
    run.duplicates += len(batch.items) - (inserted - run.ingested)
    run.ingested = inserted


def _insert_items(cursor, run: IngestRun, items: list[tuple]) -> None:
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (image_shas varchar(64)[], question text, answer text, "
        "answer_type varchar(20), key_words varchar(200)[], description text, source_row integer, "
        "metadata jsonb, content_key varchar(64)) ON COMMIT DELETE ROWS"
    )
    cursor.execute("TRUNCATE ingest_stage")  # an enclosing transaction would otherwise keep earlier batches
    with cursor.copy(
        "COPY ingest_stage (image_shas, question, answer, answer_type, key_words, description, source_row, "
        "metadata, content_key) FROM STDIN"
    ) as copy:
        for item in items:
            copy.write_row(item)
    cursor.execute(
        "INSERT INTO pools_item (pool_id, image_shas, question, answer, answer_type, key_words, description, "
        "source, source_row, metadata, content_key, ingest_run_id, excluded, version, created_at, updated_at) "
        "SELECT %s, image_shas, question, answer, answer_type, key_words, description, %s, source_row, metadata, "
        "content_key, %s, false, 1, now(), now() FROM ingest_stage ORDER BY source_row "
        "ON CONFLICT (pool_id, content_key) DO NOTHING",
        [run.pool_id, run.source_name, run.pk],
    )


def _store_image_files(images: Iterable[CheckedImage]) -> None:
    root = Path(settings.MEDIA_ROOT)
    for image in images:
        target = root / image_relative_path(image.sha256, image.format)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(image.data)
        os.replace(tmp, target)  # atomic: a reader never sees half a file


def _estimate_rows(source: Path) -> int | None:
    """Rows to expect, for progress bars; None when it cannot be known cheaply."""
    try:
        if source.is_file() and source.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(source).metadata.num_rows
        if source.is_file() and source.suffix == ".jsonl":
            with open(source, "rb") as fh:
                return sum(1 for line in fh if line.strip())
    except Exception:  # an estimate must never fail the run; the reader reports the real problem
        return None
    return None


def ingest_upload_accept(*, user, pool_name: str, fmt: str, upload) -> IngestRun:
    """Keep an uploaded file under UPLOAD_ROOT and queue its ingest on a worker after commit."""
    import re
    import uuid

    check_role(user, Role.CURATOR)
    folder = Path(settings.UPLOAD_ROOT) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name).lstrip(".") or "upload"
    target = folder / safe_name
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    with transaction.atomic():
        pool = pool_get_or_create(name=pool_name, user=user)
        run = ingest_run_create(user=user, pool=pool, source=target, source_name=upload.name, fmt=fmt)
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    send_task("workers.tasks.ingest.run", run_id, queue="cpu")
