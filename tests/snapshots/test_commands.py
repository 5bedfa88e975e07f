from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from lookfirst.pools.models import Item
from lookfirst.snapshots.models import Export, Snapshot

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_snapshot_create_list_and_diff(pool_items):
    pool, items = pool_items
    first = json.loads(run("snapshot", "create", "snap", "--name", "baseline", "--json"))
    assert {k: first[k] for k in ("pool", "name", "version", "parent", "items")} == {
        "pool": "snap", "name": "baseline", "version": 1, "parent": None, "items": 12}
    assert first["hash"] == Snapshot.objects.get(pk=first["id"]).manifest_hash

    Item.objects.filter(pk=items[1].pk).update(bucket="hard")
    second = json.loads(run("snapshot", "create", "snap", "--name", "harder", "--from", str(first["id"]), "--json"))
    assert (second["version"], second["parent"]) == (2, first["id"])

    listed = json.loads(run("snapshot", "list", "snap", "--json"))
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    assert f"v2  harder from #{first['id']}" in run("snapshot", "list")

    diff = json.loads(run("snapshot", "diff", str(first["id"]), str(second["id"]), "--json"))
    assert diff == {"a": first["id"], "b": second["id"], "added": [], "removed": [],
                    "changed": [{"item_id": items[1].pk, "fields": {"bucket": {"before": "easy", "after": "hard"}}}]}
    assert "0 added, 0 removed, 1 changed" in run("snapshot", "diff", str(first["id"]), str(second["id"]))

    with pytest.raises(CommandError, match="no pool named 'nope'"):
        run("snapshot", "create", "nope", "--name", "x")
    with pytest.raises(CommandError, match="no snapshot #999999"):
        run("snapshot", "diff", "999999", str(first["id"]))


def test_export_inline_queued_and_refused(pool_items, tmp_path):
    snapshot = json.loads(run("snapshot", "create", "snap", "--name", "s", "--json"))
    out = tmp_path / "easy"
    printed = run("export", str(snapshot["id"]), "--format", "easyr1", "--rule", "merged", "--out", str(out),
                  "--inline")
    export = Export.objects.get()
    assert (export.state, export.format, export.file_type, export.rule) == ("done", "easyr1", "jsonl", "merged")
    assert printed.startswith(f"export #{export.pk} -> {out}: merged ")
    assert json.loads((out / "manifest.json").read_text())["splits"] == export.manifest["splits"]

    # Without --wait or --inline the export is queued for a worker (after commit; the test never commits).
    printed = run("export", str(snapshot["id"]), "--format", "verl", "--out", str(tmp_path / "later"))
    queued = Export.objects.exclude(pk=export.pk).get()
    assert queued.state == "queued" and f"export #{queued.pk} queued" in printed

    with pytest.raises(CommandError, match="not empty"):
        run("export", str(snapshot["id"]), "--format", "trl", "--out", str(out), "--inline")
    assert Export.objects.count() == 2

