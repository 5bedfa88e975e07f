from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from lookfirst.pools.models import Pool
from lookfirst.snapshots import selectors, services
from lookfirst.snapshots.models import Snapshot


class Command(BaseCommand):
    help = "Create, list and compare snapshots (immutable, versioned freezes of a pool)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="freeze a pool as its next version")
        create.add_argument("pool")
        create.add_argument("--name", required=True)
        create.add_argument("--from", dest="parent", type=int, default=None, help="parent snapshot id")
        create.add_argument("--description", default="")
        create.add_argument("--json", action="store_true")
        listing = actions.add_parser("list", help="list snapshots")
        listing.add_argument("pool", nargs="?")
        listing.add_argument("--json", action="store_true")
        diff = actions.add_parser("diff", help="items added, removed and changed from snapshot A to B")
        diff.add_argument("a", type=int)
        diff.add_argument("b", type=int)
        diff.add_argument("--json", action="store_true")

    def handle(self, *args, action, **o):
        getattr(self, f"_{action}")(**o)

    def _create(self, *, pool, name, parent, description, json: bool, **_):
        pool_obj = _pool(pool)
        parent_obj = _snapshot(parent) if parent is not None else None
        try:
            snapshot = services.snapshot_create(user=None, pool=pool_obj, name=name, parent=parent_obj,
                                                description=description)
        except services.SnapshotError as exc:
            raise CommandError(str(exc)) from None
        if json:
            self.stdout.write(_dumps(_summary(snapshot)))
        else:
            self.stdout.write(f"snapshot #{snapshot.pk}: {pool_obj.name} v{snapshot.version} {snapshot.name!r}, "
                              f"{snapshot.item_count} items ({snapshot.counts['kept']} kept), "
                              f"sha256 {snapshot.manifest_hash}")

    def _list(self, *, pool, json: bool, **_):
        snapshots = selectors.snapshot_list(pool=_pool(pool) if pool else None)
        if json:
            self.stdout.write(_dumps([_summary(s) for s in snapshots]))
            return
        for s in snapshots:
            parent = f" from #{s.parent_id}" if s.parent_id else ""
            self.stdout.write(f"#{s.pk}  {s.pool.name} v{s.version}  {s.name}{parent}  {s.item_count} items  "
                              f"{s.created_at:%Y-%m-%d %H:%M}  {s.manifest_hash[:12]}")

    def _diff(self, *, a, b, json: bool, **_):
        diff = services.snapshot_diff(a=_snapshot(a), b=_snapshot(b))
        if json:
            self.stdout.write(_dumps(diff.as_dict()))
            return
        self.stdout.write(f"#{a} -> #{b}: {len(diff.added)} added, {len(diff.removed)} removed, "
                          f"{len(diff.changed)} changed")
        for item_id in diff.added[:50]:
            self.stdout.write(f"  + {item_id}")
        for item_id in diff.removed[:50]:
            self.stdout.write(f"  - {item_id}")
        for change in diff.changed[:50]:
            fields = ", ".join(f"{k}: {v['before']!r} -> {v['after']!r}" for k, v in change["fields"].items())
            self.stdout.write(f"  ~ {change['item_id']}  {fields}")


def _pool(name: str) -> Pool:
    try:
        return Pool.objects.get(name=name)
    except Pool.DoesNotExist:
        raise CommandError(f"no pool named {name!r}") from None


def _snapshot(snapshot_id: int) -> Snapshot:
    try:
        return selectors.snapshot_get(snapshot_id=snapshot_id)
    except Snapshot.DoesNotExist:
        raise CommandError(f"no snapshot #{snapshot_id}") from None


def _summary(s: Snapshot) -> dict:
    return {"id": s.pk, "pool": s.pool.name, "name": s.name, "version": s.version, "parent": s.parent_id,
            "items": s.item_count, "counts": s.counts, "hash": s.manifest_hash, "created_at": s.created_at.isoformat()}


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
