from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm


class Command(BaseCommand):
    help = "Write a shapes-world pool (EasyR1 jsonl + images) that `ingest` reads as is. Deterministic per seed."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path)
        parser.add_argument("--items", type=int, default=500)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, out: Path, items: int, seed: int, **options):
        from workers.shapes import write_pool

        with tqdm(total=items, unit="item", desc="shapes pool") as bar:
            path = write_pool(out, n=items, seed=seed, progress=lambda done: bar.update(done - bar.n))
        self.stdout.write(f"wrote {items} items to {path}")
