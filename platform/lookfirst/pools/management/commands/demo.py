"""`make demo`: the whole pipeline on a generated shapes pool, then the product, served.

generate pool -> ingest -> build/load built-in models -> score (pass rates + CLIP + buckets)
-> snapshot -> exports (TRL + EasyR1) -> queue a PeBR two-stage and a merged GRPO job
-> serve the UI (the training worker runs the two jobs while you watch).
"""
from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from lookfirst.ingest import services as ingest
from lookfirst.pools.models import Pool
from lookfirst.scoring import services as scoring
from lookfirst.scoring.models import ScoringRun

DEMO_POOL = "shapes-demo"
VLM, CLIP = "lookfirst:shapes-vlm", "lookfirst:shapes-clip"


class Command(BaseCommand):
    help = "Generate, ingest and score the demo pool, then start the product (see `up`)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)
        parser.add_argument("--seed", type=int, default=20261126)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--no-serve", action="store_true", help="prepare the demo and exit")
        parser.add_argument("--no-train", action="store_true", help="do not queue the two demo training jobs")

    def handle(self, *args, items: int, seed: int, port: int | None, no_serve: bool, **options):
        from lookfirst.scoring.management.commands.builtin_models import ensure_with_bar
        from workers.shapes import write_pool

        call_command("migrate", interactive=False, verbosity=0)
        folder = settings.LOOKFIRST_HOME / "demo" / f"shapes-{seed}-{items}"
        jsonl = folder / "train.jsonl"
        if not jsonl.exists():
            with tqdm(total=items, unit="item", desc="generate demo pool") as bar:
                write_pool(folder, n=items, seed=seed, progress=lambda done: bar.update(done - bar.n))
        with tqdm(total=items, unit="row", desc="ingest") as bar:
            run = ingest.ingest_path(user=None, pool_name=DEMO_POOL, path=jsonl,
                                     progress=lambda r: bar.update(r.rows_seen - bar.n))
        pool = Pool.objects.get(name=DEMO_POOL)
        self.stdout.write(f"pool {pool.name}: {pool.items.count()} items ({run.ingested} new, "
                          f"{run.duplicates} duplicates, {run.skipped} row errors)")
        ensure_with_bar("shapes-vlm")
        ensure_with_bar("shapes-clip")
        scored = self._score(pool)
        b = scored.summary["buckets"]
        self.stdout.write(f"scoring run #{scored.pk}: Easy {b['easy']}, Medium {b['medium']}, Hard {b['hard']}"
                          f" ({scored.failed} failed)")
        snapshot = self._snapshot_and_export(pool)
        if not options.get("no_train"):
            self._queue_training(snapshot)
        if not no_serve:
            call_command("up", **({"port": port} if port else {}))

    def _score(self, pool: Pool) -> ScoringRun:
        """PeBR-R1 rule with the built-ins: 8 answers per item at T 1.2, top_p 0.99 (science.md)."""
        done = ScoringRun.objects.filter(pool=pool, model_spec=VLM, state=ScoringRun.State.DONE).first()
        if done is not None:
            return done
        run = scoring.scoring_run_create(user=None, pool=pool, model_spec=VLM, clip_spec=CLIP, n_samples=8,
                                         temperature=1.2, top_p=0.99, max_new_tokens=160, seed=0, enqueue=False)
        with tqdm(total=run.total, unit="item", desc="score (8 answers/item + CLIP)") as bar:
            for chunk in scoring.scoring_run_chunks(run_id=run.pk):
                scoring.scoring_chunk_execute(run_id=run.pk, item_ids=chunk)
                bar.update(len(chunk))
        run.refresh_from_db()
        return run

    def _snapshot_and_export(self, pool: Pool):
        from lookfirst.snapshots.models import Export, Snapshot
        from lookfirst.snapshots.services import export_create, export_execute, snapshot_create

        snapshot = Snapshot.objects.filter(pool=pool, name="demo").order_by("-version").first()
        if snapshot is None:
            snapshot = snapshot_create(user=None, pool=pool, name="demo", description="made by make demo")
        self.stdout.write(f"snapshot #{snapshot.pk} {snapshot.name} v{snapshot.version} ({snapshot.manifest_hash[:12]})")
        for fmt in ("trl", "easyr1"):
            export = Export.objects.filter(snapshot=snapshot, format=fmt, rule="pebr-2stage",
                                           state=Export.State.DONE).first()
            if export is None:
                export = export_create(user=None, snapshot=snapshot, fmt=fmt, rule="pebr-2stage", enqueue=False)
                with tqdm(total=None, unit="row", desc=f"export {fmt}") as bar:
                    export = export_execute(export_id=export.pk, progress=lambda e: bar.update(e.progress - bar.n))
            splits = {k: v["rows"] for k, v in (export.manifest or {}).get("splits", {}).items()}
            self.stdout.write(f"export {fmt}: {export.out_dir} {splits}")
        return snapshot

    def _queue_training(self, snapshot) -> None:
        from lookfirst.accounts.services import admin_ensure
        from lookfirst.training.models import TrainingJob
        from lookfirst.training.services import training_job_create
        from django.contrib.auth import get_user_model

        if TrainingJob.objects.filter(snapshot=snapshot).exists():
            return
        username, _ = admin_ensure(credentials_file=settings.LOOKFIRST_HOME / "admin.json")
        admin = get_user_model().objects.get(username=username)
        for recipe in ("pebr-2stage", "merged"):
            job = training_job_create(user=admin, snapshot=snapshot, recipe=recipe, model_spec=VLM, clip_spec=CLIP,
                                      config_name="cpu-demo.yaml")
            self.stdout.write(f"training job #{job.pk} ({recipe}) queued: it runs once the product is up")
