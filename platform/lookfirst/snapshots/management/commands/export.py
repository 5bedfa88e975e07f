from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lookfirst.snapshots import formats, rules, selectors, services
from lookfirst.snapshots.models import Export, Snapshot


class Command(BaseCommand):
    help = "Export a snapshot for a trainer (EasyR1, verl, TRL or plain JSONL) into a folder."

    def add_arguments(self, parser):
        parser.add_argument("snapshot", type=int)
        parser.add_argument("--format", required=True, choices=tuple(formats.FILE_TYPES))
        parser.add_argument("--rule", default="pebr-2stage", choices=tuple(rules.RULES))
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--file-type", default="", choices=("", "jsonl", "parquet"),
                            help="EasyR1 only: jsonl (default) or parquet")
        parser.add_argument("--eval-seed", type=int, default=0)
        parser.add_argument("--eval-fraction", type=float, default=0.1)
        parser.add_argument("--wait", action="store_true", help="queue it, then follow the workers' progress")
        parser.add_argument("--inline", action="store_true", help="write it in this process instead of a worker")

    def handle(self, *args, **o):
        try:
            snapshot = selectors.snapshot_get(snapshot_id=o["snapshot"])
        except Snapshot.DoesNotExist:
            raise CommandError(f"no snapshot #{o['snapshot']}") from None
        try:
            export = services.export_create(
                user=None, snapshot=snapshot, fmt=o["format"], rule=o["rule"], out_dir=o["out"].resolve(),
                file_type=o["file_type"], eval_seed=o["eval_seed"], eval_fraction=o["eval_fraction"],
                enqueue=not o["inline"])
        except services.ExportError as exc:
            raise CommandError(str(exc)) from None
        desc = f"export #{export.pk}"
        if o["inline"]:
            with tqdm(unit="row", desc=desc) as bar:
                def progress(current: Export) -> None:
                    bar.total = current.total
                    bar.n = current.progress
                    bar.refresh()

                export = services.export_execute(export_id=export.pk, progress=progress)
        elif o["wait"]:
            with tqdm(unit="row", desc=desc) as bar:
                while True:
                    export.refresh_from_db()
                    bar.total, bar.n = export.total, export.progress
                    bar.refresh()
                    if export.state in (Export.State.DONE, Export.State.FAILED):
                        break
                    time.sleep(0.5)
        else:
            self.stdout.write(f"export #{export.pk} queued; it writes {export.out_dir} (follow it with --wait "
                              f"or GET /api/exports/{export.pk})")
            return
        if export.state == Export.State.FAILED:
            raise CommandError(f"export #{export.pk} failed: {export.error}")
        splits = ", ".join(f"{name} {export.manifest['splits'][name]['rows']}"
                           for name in [*export.manifest["stages"], "eval"])
        self.stdout.write(f"export #{export.pk} -> {export.out_dir}: {splits}")
