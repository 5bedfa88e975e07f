"""`make demo`: the whole pipeline on a generated shapes pool, then the product, served."""
from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from lookfirst.ingest import services
from lookfirst.pools.models import Pool

DEMO_POOL = "shapes-demo"


class Command(BaseCommand):
    help = "Generate and ingest the demo pool, then start the product (see `up`)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)
        parser.add_argument("--seed", type=int, default=20261126)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--no-serve", action="store_true", help="prepare the demo and exit")

    def handle(self, *args, items: int, seed: int, port: int | None, no_serve: bool, **options):
        from workers.shapes import write_pool

        call_command("migrate", interactive=False, verbosity=0)
        folder = settings.LOOKFIRST_HOME / "demo" / f"shapes-{seed}-{items}"
        jsonl = folder / "train.jsonl"
        if not jsonl.exists():
            with tqdm(total=items, unit="item", desc="1/2 generate demo pool") as bar:
                write_pool(folder, n=items, seed=seed, progress=lambda done: bar.update(done - bar.n))
        with tqdm(total=items, unit="row", desc="2/2 ingest") as bar:
            run = services.ingest_path(user=None, pool_name=DEMO_POOL, path=jsonl,
                                       progress=lambda r: bar.update(r.rows_seen - bar.n))
        pool = Pool.objects.get(name=DEMO_POOL)
        self.stdout.write(
            f"pool {pool.name}: {pool.items.count()} items ({run.ingested} new, {run.duplicates} duplicates, "
            f"{run.skipped} row errors)"
        )
        if not no_serve:
            call_command("up", **({"port": port} if port else {}))
