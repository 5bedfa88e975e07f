"""Snapshots (immutable freezes of a pool) and exports (snapshot -> trainer files).

`snapshot_create` copies the pool's items in one INSERT ... SELECT (one consistent read), hashes the copied
rows, and only then inserts the snapshot row, hash included: its id is drawn from the sequence first and the
item rows point at it through a foreign key that PostgreSQL checks at commit (Django creates them
DEFERRABLE INITIALLY DEFERRED). So no row is ever updated, and the triggers can refuse every UPDATE.

`export_create` records an export and queues it after commit; `export_execute` (a `cpu` worker, or the CLI
with --inline) streams the snapshot once through a server-side cursor in the rule's order, writes into a
hidden sibling folder, and renames it into place once the manifest is written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.pools.models import Image, Pool, image_relative_path
from lookfirst.snapshots import formats, rules
from lookfirst.snapshots.models import FROZEN_FIELDS, Export, Snapshot, SnapshotItem

logger = logging.getLogger(__name__)
DIFF_FIELDS = ("bucket", "answer", "key_words")


class SnapshotError(ValueError):
    pass


class ExportError(ValueError):
    pass


# ------------------------------------------------------------------ snapshots
def canonical_row(row: dict) -> bytes:
    """One row of the manifest hash: sorted-key compact JSON plus a newline."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _digest_and_counts(snapshot_id: int) -> tuple[str, int, dict]:
    digest = hashlib.sha256()
    total, kept, excluded, buckets = 0, 0, 0, {}
    rows = (SnapshotItem.objects.filter(snapshot_id=snapshot_id).order_by("item_id")
            .values(*FROZEN_FIELDS).iterator(chunk_size=5000))
    for row in rows:
        digest.update(canonical_row(row))
        total += 1
        if row["excluded"]:
            excluded += 1
        else:
            kept += 1
            buckets[row["bucket"]] = buckets.get(row["bucket"], 0) + 1
    return digest.hexdigest(), total, {"kept": kept, "excluded": excluded, "buckets": dict(sorted(buckets.items()))}


def snapshot_create(*, user, pool: Pool, name: str, parent: Snapshot | None = None, description: str = "") -> Snapshot:
    """Freeze `pool` as its next version. `user` None is the command line (trusted)."""
    if user is not None:
        check_role(user, Role.CURATOR)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise SnapshotError("a snapshot needs a name of 1 to 200 characters")
    if parent is not None and parent.pool_id != pool.pk:
        raise SnapshotError(f"parent snapshot {parent.pk} belongs to another pool")
    columns = [f for f in FROZEN_FIELDS if f != "item_id"]
    with transaction.atomic():
        Pool.objects.select_for_update().get(pk=pool.pk)  # one version number at a time per pool
        version = (Snapshot.objects.filter(pool=pool).aggregate(v=Max("version"))["v"] or 0) + 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('snapshots_snapshot', 'id'))")
            snapshot_id = cursor.fetchone()[0]
            cursor.execute(
                f"INSERT INTO snapshots_snapshotitem (snapshot_id, item_id, {', '.join(columns)}) "
                f"SELECT %s, id, {', '.join(columns)} FROM pools_item WHERE pool_id = %s",
                [snapshot_id, pool.pk],
            )
        digest, total, counts = _digest_and_counts(snapshot_id)
        return Snapshot.objects.create(
            pk=snapshot_id, pool=pool, name=name, version=version, parent=parent, description=description or "",
            item_count=total, counts=counts, manifest_hash=digest, created_by=user,
        )


def snapshot_verify(*, snapshot: Snapshot) -> bool:
    """Recompute the manifest hash from the stored rows."""
    return _digest_and_counts(snapshot.pk)[0] == snapshot.manifest_hash


@dataclass(frozen=True)
class SnapshotDiff:
    a: int
    b: int
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    # [{"item_id": 7, "fields": {"bucket": {"before": "easy", "after": "medium"}}}]
    changed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "added": self.added, "removed": self.removed, "changed": self.changed}


def snapshot_diff(*, a: Snapshot, b: Snapshot) -> SnapshotDiff:
    """Items kept (not excluded) in b only (added), in a only (removed), and kept in both with a different
    bucket, answer or key words (changed, with before/after). Excluding an item counts as removing it."""
    compare = " OR ".join(f"a.{f} IS DISTINCT FROM b.{f}" for f in DIFF_FIELDS)
    selected = ", ".join(f"a.{f}, b.{f}" for f in DIFF_FIELDS)
    sql = (
        f"SELECT COALESCE(a.item_id, b.item_id), a.item_id IS NOT NULL AND NOT a.excluded, "
        f"b.item_id IS NOT NULL AND NOT b.excluded, {selected} "
        "FROM (SELECT * FROM snapshots_snapshotitem WHERE snapshot_id = %s) a "
        "FULL OUTER JOIN (SELECT * FROM snapshots_snapshotitem WHERE snapshot_id = %s) b ON a.item_id = b.item_id "
        f"WHERE (a.item_id IS NULL OR a.excluded) IS DISTINCT FROM (b.item_id IS NULL OR b.excluded) OR {compare} "
        "ORDER BY 1"
    )
    diff = SnapshotDiff(a=a.pk, b=b.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, [a.pk, b.pk])
        for item_id, in_a, in_b, *values in cursor.fetchall():
            if in_b and not in_a:
                diff.added.append(item_id)
            elif in_a and not in_b:
                diff.removed.append(item_id)
            elif in_a and in_b:
                fields = {name: {"before": values[2 * i], "after": values[2 * i + 1]}
                          for i, name in enumerate(DIFF_FIELDS) if values[2 * i] != values[2 * i + 1]}
                diff.changed.append({"item_id": item_id, "fields": fields})
    return diff


# ------------------------------------------------------------------ exports
def export_root() -> Path:
    return Path(getattr(settings, "LOOKFIRST_EXPORT_ROOT", None) or Path(settings.LOOKFIRST_HOME) / "exports")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"output folder {out} exists and is not empty")


def export_create(*, user, snapshot: Snapshot, fmt: str, rule: str, out_dir: str | Path | None = None,
                  file_type: str = "", eval_seed: int = 0, eval_fraction: float = 0.1,
                  enqueue: bool = True) -> Export:
    """Record an export of `snapshot` and queue it on the `cpu` workers after commit.

    `out_dir` defaults to <export root>/<export id>; `user` None is the command line (trusted).
    """
    if user is not None:
        check_role(user, Role.CURATOR)
    try:
        spec = formats.format_spec(fmt, file_type)
    except formats.ExportFormatError as exc:
        raise ExportError(str(exc)) from None
    if rule not in rules.RULES:
        raise ExportError(f"unknown rule {rule!r}; known: {', '.join(rules.RULES)}")
    if not 0 <= eval_fraction < 1:
        raise ExportError("eval_fraction must be in [0, 1)")
    if out_dir is not None:
        _check_out(Path(out_dir))
    with transaction.atomic():
        export = Export.objects.create(snapshot=snapshot, format=spec.name, file_type=spec.file_type, rule=rule,
                                       eval_seed=eval_seed, eval_fraction=eval_fraction, created_by=user,
                                       out_dir=str(out_dir or ""))
        if not out_dir:
            # A fresh database restarts ids while LOOKFIRST_HOME keeps old folders: never reuse a name.
            export.out_dir = str(export_root() / f"{export.pk}-{uuid.uuid4().hex[:8]}")
            Export.objects.filter(pk=export.pk).update(out_dir=export.out_dir)
        if enqueue:
            transaction.on_commit(lambda: send_task("workers.tasks.exports.run", export.pk, queue="cpu"))
    return export


def _routed_rows(export: Export, batch: int = 1000) -> Iterable[tuple[str, str, dict]]:
    """The snapshot's kept rows in the rule's order, one server-side cursor pass, each with its split."""
    rule = export.rule
    kept = SnapshotItem.objects.filter(snapshot_id=export.snapshot_id, excluded=False,
                                       bucket__in=rules.KEPT_BUCKETS)
    if rules.ORDER[rule] == "pass_rate_desc":
        kept = kept.order_by(Coalesce("pass_rate", Value(-1.0)).desc(), "item_id")
    else:
        kept = kept.order_by("item_id")
    capability = rule == "capcurriculum-3stage"  # the only rule that reads tags and metadata
    fields = [f for f in FROZEN_FIELDS if export.format == "jsonl" or capability or f not in ("tags", "metadata")]
    stream = kept.values(*fields).iterator(chunk_size=batch)
    while chunk := list(islice(stream, batch)):
        shas = {sha for item in chunk for sha in item["image_shas"]}
        exts = {sha: fmt.lower() for sha, fmt in Image.objects.filter(sha256__in=shas).values_list("sha256", "format")}
        for item in chunk:
            text_only = capability and rules.is_text_only(item["tags"], item["metadata"])
            row = rules.Row(item["item_id"], item["bucket"], item["pass_rate"], item["excluded"], text_only)
            placed = rules.route(rule, row, seed=export.eval_seed, fraction=export.eval_fraction)
            if placed is None:
                continue
            missing = [sha for sha in item["image_shas"] if sha not in exts]
            if missing:
                raise ExportError(f"item {item['item_id']}: image record {missing[0]} missing")
            item["images"] = [formats.ImageFile(sha, exts[sha]) for sha in item["image_shas"]]
            yield placed[0], placed[1], item


def _image_source() -> formats.ImageSource:
    media = str(settings.MEDIA_ROOT)
    return lambda image: os.path.join(media, image_relative_path(image.sha256, image.ext))


def export_execute(*, export_id: int, progress: Callable[[Export], None] | None = None) -> Export:
    """Write the export's files. Safe to run twice: a finished export is left alone, a partial one restarts."""
    export = Export.objects.select_related("snapshot__pool").get(pk=export_id)
    if export.state == Export.State.DONE:
        return export
    snapshot = export.snapshot
    out = Path(export.out_dir)
    partial = out.with_name(f".{out.name}.partial-{export.pk}")
    shutil.rmtree(partial, ignore_errors=True)
    Export.objects.filter(pk=export.pk).update(state=Export.State.RUNNING, started_at=timezone.now(), progress=0,
                                               error="", finished_at=None)
    try:
        rules.check(export.rule, export.eval_fraction)
        total = SnapshotItem.objects.filter(snapshot_id=snapshot.pk, excluded=False,
                                            bucket__in=rules.KEPT_BUCKETS).count()
        export.total = total
        Export.objects.filter(pk=export.pk).update(total=total)

        def written(n: int) -> None:
            export.progress = n
            Export.objects.filter(pk=export.pk).update(progress=n)
            if progress is not None:
                progress(export)

        header = {"eval_seed": export.eval_seed, "eval_fraction": export.eval_fraction,
                  "snapshot": {"id": snapshot.pk, "pool": snapshot.pool.name, "name": snapshot.name,
                               "version": snapshot.version, "hash": snapshot.manifest_hash}}
        manifest = formats.write_export(
            out=partial, spec=formats.format_spec(export.format, export.file_type), rule=export.rule,
            stages=rules.RULES[export.rule], rows=_routed_rows(export), image_source=_image_source(), header=header,
            progress=written)
        _check_out(out)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.rename(out)
    except Exception as exc:  # the run is marked failed with the reason; nothing half-written is left
        logger.exception("export %s failed", export.pk)
        shutil.rmtree(partial, ignore_errors=True)
        Export.objects.filter(pk=export.pk).update(state=Export.State.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                   finished_at=timezone.now())
    else:
        written_rows = sum(split["rows"] for split in manifest["splits"].values())
        Export.objects.filter(pk=export.pk).update(state=Export.State.DONE, manifest=manifest, progress=written_rows,
                                                   total=written_rows, finished_at=timezone.now())
    export.refresh_from_db()
    return export


