from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

from django.db.models import QuerySet

from lookfirst.pools.models import Pool
from lookfirst.snapshots.models import Export, Snapshot, SnapshotItem


def snapshot_list(*, pool: Pool | None = None) -> QuerySet[Snapshot]:
    qs = Snapshot.objects.select_related("pool", "created_by")
    if pool is not None:
        qs = qs.filter(pool=pool)
    return qs.order_by("pool__name", "-version")


def snapshot_get(*, snapshot_id: int) -> Snapshot:
    return Snapshot.objects.select_related("pool", "created_by").get(pk=snapshot_id)


def snapshot_items(*, snapshot: Snapshot, after: int = 0, size: int = 1000) -> list[SnapshotItem]:
    """One keyset page of a snapshot's rows in item-id order, after item id `after`."""
    return list(SnapshotItem.objects.filter(snapshot=snapshot, item_id__gt=after).order_by("item_id")[:size])


def export_list(*, snapshot: Snapshot | None = None) -> QuerySet[Export]:
    qs = Export.objects.select_related("snapshot__pool", "created_by")
    return qs.filter(snapshot=snapshot) if snapshot is not None else qs


def export_get(*, export_id: int) -> Export:
    return Export.objects.select_related("snapshot__pool", "created_by").get(pk=export_id)


def export_file(*, export: Export, name: str) -> Path | None:
    """The file `name` of a finished export, if the manifest lists it (manifest.json included)."""
    if export.state != Export.State.DONE or not export.manifest:
        return None
    if name != "manifest.json" and name not in export.manifest["files"]:
        return None
    path = Path(export.out_dir) / name
    return path if path.is_file() else None


def export_zip_stream(*, export: Export, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """The finished export as a zip, streamed: files are stored (parquet and images are compressed already)
    and read a chunk at a time, so memory stays bounded whatever the export's size."""
    buffer = _Sink()
    names = ["manifest.json", *sorted(export.manifest["files"])]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            with open(Path(export.out_dir) / name, "rb") as source, archive.open(info, "w", force_zip64=True) as dest:
                for block in iter(lambda: source.read(chunk), b""):
                    dest.write(block)
                    yield buffer.take()
            yield buffer.take()
    yield buffer.take()


class _Sink:
    """A write-only, unseekable stream whose contents are taken as they come (zipfile streams into it)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data
