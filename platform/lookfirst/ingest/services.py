"""Ingest: read a source in any supported format into a pool, row by row, losing nothing.

Every entry point (CLI, upload, demo) goes through `ingest_run_create` + `ingest_run_execute`.
Rows are read as a stream and written in batches, each with one COPY into pools_item of the rows
whose content key (images + question) is not in the pool yet: duplicates are counted, not inserted,
so running the same file twice adds nothing.

A thread reads ahead: it parses rows, reads and hashes image files, decode-checks the contents the
Image table does not hold yet (one query per batch, on its own connection), starts writing their files
and builds the COPY rows. The calling thread only writes finished batches, one transaction each, so the
database's work on one batch overlaps the Python work on the next.
"""
from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Callable, Iterable, Iterator, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg.errors import UniqueViolation

from lookfirst.accounts.roles import Role, check_role
from lookfirst.ingest.answers import answer_type_guess
from lookfirst.ingest.images import ImageFacts, ImageRejected
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
from lookfirst.ingest.run_images import ImageChecker, ImageReader, Token
from lookfirst.pools.models import Pool
from lookfirst.runtime.tasks import send_task

BATCH_ROWS = 2000
BATCH_IMAGE_BYTES = 32 * 1024**2  # new image bytes a batch may hold; it ends early past this
READ_AHEAD = 2  # batches read while one is written
T = TypeVar("T")


@dataclass
class _Batch:
    # rows, their images' tokens and their COPY tuples (None when an image could not be read)
    admitted: list[tuple[SourceRow, list[Token], tuple | None]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    pending: dict[str, bytes] = field(default_factory=dict)  # contents new to the run, by sha256
    # Once settled: the COPY tuples of the rows whose images all passed, the images new to the Image
    # table, and the writes of the accepted image files.
    items: list[tuple] = field(default_factory=list)
    new_images: list[ImageFacts] = field(default_factory=list)
    writes: list[Future] = field(default_factory=list)


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
    checker = ImageChecker(max_bytes=settings.LOOKFIRST_MAX_IMAGE_BYTES,
                           max_pixels=settings.LOOKFIRST_MAX_IMAGE_PIXELS, media_root=settings.MEDIA_ROOT)
    try:
        run.format = run.requested_format if run.requested_format != "auto" else detect_format(source)
        run.rows_total = _estimate_rows(source)
        run.save()
        rows = read_source(source, run.format, Path(run.images_dir) if run.images_dir else None)
        reader = ImageReader(max_bytes=settings.LOOKFIRST_MAX_IMAGE_BYTES)
        direct = True
        for batch in _read_ahead(_batches(rows, reader, checker), READ_AHEAD):
            direct = _write_batch(run, batch, checker, direct)
            if progress:
                progress(run)
    except (UnknownFormatError, UnreadableSourceError) as exc:
        run.state, run.message, run.finished_at = IngestRun.State.FAILED, str(exc), timezone.now()
        run.save()
        return run
    finally:
        checker.close()
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


def _batches(rows: Iterable[SourceRow | RowError], reader: ImageReader, checker: ImageChecker) -> Iterator[_Batch]:
    """Settled batches: rows read, their images read, checked and being stored, their errors known.

    Meant for the reading thread: its one query (which contents the Image table holds) goes through
    that thread's own connection, closed when the rows run out.
    """
    try:
        batch = _Batch()
        for row in rows:
            batch.rows += 1
            if isinstance(row, RowError):
                batch.errors.append(row)
            else:
                _admit_row(batch, row, reader)
            if batch.rows >= BATCH_ROWS or reader.pending_bytes >= BATCH_IMAGE_BYTES:
                yield _settle(batch, checker)
                reader.pending_bytes = 0
                if reader.forget_if_full():
                    checker.outcomes.clear()
                batch = _Batch()
        if batch.rows:
            yield _settle(batch, checker)
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


def _settle(batch: _Batch, checker: ImageChecker) -> _Batch:
    with connection.cursor() as cursor:
        batch.new_images, batch.writes = checker.settle(cursor, batch.pending)
    batch.pending = {}
    for row, tokens, item in batch.admitted:
        error = _image_error(row, tokens, checker)
        if error:
            batch.errors.append(error)
        else:
            batch.items.append(item)
    batch.admitted = []
    return batch


def _read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, produced by a thread up to `depth` ahead: reading the next batch overlaps writing this one."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # raised again where the items are used
            put((_DONE, exc))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # here, not at garbage collection: the reader's files and zips close in its own thread

    thread = threading.Thread(target=produce, name="ingest-read", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = queue.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


_DONE = object()


def _admit_row(batch: _Batch, row: SourceRow, reader: ImageReader) -> None:
    if not row.question.strip():
        batch.errors.append(RowError(row.row, "question", "question is empty"))
        return
    error = _text_error(row)
    if error:
        batch.errors.append(error)
        return
    if not row.images:
        batch.errors.append(RowError(row.row, "images", "row has no image"))
        return
    tokens = []
    for ref in row.images:
        token = reader.admit(ref, batch.pending)
        tokens.append(token)
        if isinstance(token, ImageRejected):
            batch.admitted.append((row, tokens, None))  # the row's error, unless an earlier image fails its check
            return
    batch.admitted.append((row, tokens, _item(row, tokens)))


def _write_batch(run: IngestRun, batch: _Batch, checker: ImageChecker, direct: bool) -> bool:
    """Write one settled batch in one transaction; returns whether the next batch may insert direct."""
    items = batch.items
    inserted = 0
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if own_transaction:
            # A batch's commit need not wait for the disk: the run's last commit (state done) does, and it
            # flushes every commit before it. A crash in between loses a few batches, not consistency,
            # and running the ingest again restarts it. A caller's transaction keeps its own setting.
            cursor.execute("SET LOCAL synchronous_commit TO off")
        checker.record(cursor, batch.new_images)
        if items:
            inserted, direct = _insert_items(cursor, run, items, direct=direct)
        if batch.errors:
            IngestError.objects.bulk_create([IngestError(run=run, row=e.row, field=e.field, reason=e.reason)
                                             for e in sorted(batch.errors, key=lambda e: e.row)])
        run.rows_seen += batch.rows
        run.skipped += len(batch.errors)
        run.duplicates += len(items) - inserted
        run.ingested += inserted
        run.save(update_fields=["rows_seen", "skipped", "duplicates", "ingested"])
        checker.wait_stored(batch.writes)
    return direct


KEY_WORD_MAX_CHARS = 200  # pools_item.key_words is varchar(200)[]
# The full-text index's tsvector holds at most 1 MB; at most 4 bytes of it per question character.
QUESTION_MAX_CHARS = 200_000


def _text_error(row: SourceRow) -> RowError | None:
    """Text PostgreSQL cannot store: a NUL character, a lone surrogate (a JSON escape like \\ud800 with
    no pair, which is not UTF-8), a key word over its column's length, a question too long to index. One
    such row would fail the COPY of its whole batch, so it is reported here, with its field."""
    fields = [("question", row.question), ("answer", row.answer), ("description", row.description)]
    fields += [(f"key_words[{i}]", word) for i, word in enumerate(row.key_words)]
    for field, value in fields:
        reason = _unstorable(value)
        if reason:
            return RowError(row.row, field, reason)
    if len(row.question) > QUESTION_MAX_CHARS:
        return RowError(row.row, "question",
                        f"question is {len(row.question):,} characters, over the {QUESTION_MAX_CHARS:,}-character limit")
    for i, word in enumerate(row.key_words):
        if len(word) > KEY_WORD_MAX_CHARS:
            return RowError(row.row, f"key_words[{i}]",
                            f"key word is {len(word):,} characters, over the {KEY_WORD_MAX_CHARS}-character limit")
    if row.metadata:
        for field, value in _metadata_texts(row.metadata, "metadata"):
            reason = _unstorable(value)
            if reason:
                return RowError(row.row, field, reason)
    return None


def _unstorable(value: str | None) -> str | None:
    if value is None:
        return None
    if "\x00" in value:
        return "text contains a NUL character, which PostgreSQL cannot store"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "text contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid UTF-8"
    return None


def _metadata_texts(value, path: str) -> Iterator[tuple[str, str]]:
    """Every key and string in a metadata value, with where it is: metadata.extra.notes[2]."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            key = str(key)
            yield f"{path}.{key}", key
            yield from _metadata_texts(inner, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            yield from _metadata_texts(inner, f"{path}[{i}]")


def _image_error(row: SourceRow, tokens: list[Token], checker: ImageChecker) -> RowError | None:
    for index, token in enumerate(tokens):
        outcome = token if isinstance(token, ImageRejected) else checker.outcomes[token]
        if isinstance(outcome, ImageRejected):
            return RowError(row.row, f"images[{index}]", f"{outcome} ({row.images[index].name})")
    return None


def _item(row: SourceRow, shas: list[str]) -> tuple:
    """One COPY row. Arrays go as PostgreSQL literals: psycopg's list dumper cost more than the rest of the row."""
    metadata = row.metadata
    declared_type = None
    if "answer_type" in metadata:
        metadata = dict(metadata)
        declared_type = metadata.pop("answer_type")
    return (
        "{" + ",".join(shas) + "}", row.question, row.answer,
        answer_type_guess(row.answer, row.question, declared_type), _text_array(row.key_words), row.description,
        row.row, json.dumps(metadata, default=str) if metadata else "{}", content_key(shas, row.question),
    )


def content_key(shas: list[str], question: str) -> str:
    """sha256 of `json.dumps([shas, question])`, written out: shas are hex, only the question needs encoding.

    >>> content_key(["ab", "cd"], 'Which "one"?') == hashlib.sha256(
    ...     json.dumps([["ab", "cd"], 'Which "one"?']).encode()).hexdigest()
    True
    """
    quoted = ", ".join([f'"{sha}"' for sha in shas])
    return hashlib.sha256(f"[[{quoted}], {json.dumps(question)}]".encode()).hexdigest()


def _text_array(words: list[str]) -> str:
    if not words:
        return "{}"
    return "{" + ",".join(['"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in words]) + "}"


_ITEM_COLUMNS = ("image_shas, question, answer, answer_type, key_words, description, source_row, metadata, "
                 "content_key")


def _insert_items(cursor, run: IngestRun, items: list[tuple], direct: bool = True) -> tuple[int, bool]:
    """Insert the rows not in the pool yet (by content key; the first of a key wins).

    Returns how many were inserted, and whether the next batch may go direct. Direct is one COPY
    straight into pools_item, with no check: right for rows new to the pool, which is what a first
    ingest holds. When a row's key is in the pool already, the unique index refuses the whole COPY;
    the batch then goes the way that counts duplicates (staged in a temporary table, then INSERT ...
    ON CONFLICT DO NOTHING), and so does the rest of the run, since a file that repeats a pool's rows
    mostly repeats many.
    """
    if direct:
        fresh, keys = [], set()
        for item in items:
            if item[8] not in keys:
                keys.add(item[8])
                fresh.append(item)
        now = timezone.now().isoformat()
        constants = (run.source_name, run.pk, False, 1, now, now)
        pool = (run.pool_id,)
        try:
            with transaction.atomic():
                with cursor.copy(f"COPY pools_item (pool_id, {_ITEM_COLUMNS}, source, ingest_run_id, excluded, "
                                 "version, created_at, updated_at) FROM STDIN") as copy:
                    for item in fresh:
                        copy.write_row(pool + item + constants)
            return len(fresh), True
        except (IntegrityError, UniqueViolation):  # COPY is psycopg's own: Django does not wrap its errors
            pass
    return _insert_items_staged(cursor, run, items), False


def _insert_items_staged(cursor, run: IngestRun, items: list[tuple]) -> int:
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (image_shas varchar(64)[], question text, answer text, "
        "answer_type varchar(20), key_words varchar(200)[], description text, source_row integer, "
        "metadata jsonb, content_key varchar(64)) ON COMMIT DELETE ROWS"
    )
    cursor.execute("TRUNCATE ingest_stage")  # an enclosing transaction would otherwise keep earlier batches
    with cursor.copy(f"COPY ingest_stage ({_ITEM_COLUMNS}) FROM STDIN") as copy:
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
    return cursor.rowcount


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
