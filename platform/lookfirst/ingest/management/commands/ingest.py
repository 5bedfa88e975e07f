from __future__ import annotations

import json as jsonlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lookfirst.ingest import services
from lookfirst.ingest.models import IngestRun
from lookfirst.ingest.readers import FORMATS


class Command(BaseCommand):
    help = "Ingest a dataset file, folder or zip into a pool (created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("pool")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS)
        parser.add_argument("--images-dir", type=Path, default=None, help="folder image paths are relative to")
        parser.add_argument("--json", action="store_true", help="print only a JSON summary")

    def handle(self, *args, pool, path, format, images_dir, **options):
        as_json = options["json"]
        bar = None if as_json else tqdm(unit="row", desc=f"ingest {path.name}")

        def progress(run: IngestRun) -> None:
            if bar is not None:
                bar.total = run.rows_total
                bar.n = run.rows_seen
                bar.set_postfix(ingested=run.ingested, dup=run.duplicates, errors=run.skipped)
                bar.refresh()

        run = services.ingest_path(user=None, pool_name=pool, path=path, fmt=format, images_dir=images_dir,
                                   progress=progress)
        if bar is not None:
            bar.close()
        if run.state == IngestRun.State.FAILED:
            raise CommandError(run.message)
        summary = {
            "pool": run.pool.name,
            "format": run.format,
            "ingested": run.ingested,
            "duplicates": run.duplicates,
            "skipped": run.skipped,
            "errors": [{"row": e.row, "field": e.field, "reason": e.reason} for e in run.errors.all()],
        }
        if as_json:
            self.stdout.write(_json_dumps(summary))
            return
        self.stdout.write(
            f"{run.pool.name}: {run.ingested} ingested, {run.duplicates} duplicates, {run.skipped} rows with errors "
            f"(format {run.format}, run #{run.pk})"
        )
        for error in summary["errors"][:50]:
            self.stdout.write(f"  row {error['row']} [{error['field']}]: {error['reason']}")
        if run.skipped > 50:
            self.stdout.write(f"  ... {run.skipped - 50} more: see the run's page or use --json")


def _json_dumps(value) -> str:
    return jsonlib.dumps(value, ensure_ascii=False)
