from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lookfirst.pools.models import Pool
from lookfirst.scoring import services
from lookfirst.scoring.models import ScoringRun


class Command(BaseCommand):
    help = "Score a pool: N sampled answers per item graded against the answer, CLIP similarity, buckets."

    def add_arguments(self, parser):
        parser.add_argument("pool")
        parser.add_argument("--model", required=True, help="hub id, folder, openai:URL#model or lookfirst:shapes-vlm")
        parser.add_argument("--clip", default="", help="open_clip name/pretrained, local-dir:PATH or lookfirst:shapes-clip")
        parser.add_argument("--samples", type=int, default=8)
        parser.add_argument("--temperature", type=float, default=1.2)
        parser.add_argument("--top-p", type=float, default=0.99)
        parser.add_argument("--max-tokens", type=int, default=2048)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--policy", default="pebr")
        parser.add_argument("--adaptive", action="store_true", help="sample in rounds; stop an item once its bucket is settled")
        parser.add_argument("--adaptive-confidence", type=float, default=0.9,
                            help="with --adaptive: also stop once the final bucket has this probability under the "
                                 "pass-rate prior fitted on the run (default 0.9); 0 = only when certain")
        parser.add_argument("--round-size", type=int, default=2, help="with --adaptive: answers per item per round")
        parser.add_argument("--chunk-size", type=int, default=32)
        parser.add_argument("--wait", action="store_true", help="wait for the workers to finish the run")
        parser.add_argument("--inline", action="store_true", help="score in this process instead of on workers")
        parser.add_argument("--json", action="store_true", help="print the run's bucket counts as JSON")

    def handle(self, *args, **o):
        try:
            pool = Pool.objects.get(name=o["pool"])
        except Pool.DoesNotExist:
            raise CommandError(f"no pool named {o['pool']!r}") from None
        try:
            run = services.scoring_run_create(
                user=None, pool=pool, model_spec=o["model"], clip_spec=o["clip"], n_samples=o["samples"],
                temperature=o["temperature"], top_p=o["top_p"], max_new_tokens=o["max_tokens"], seed=o["seed"],
                policy=o["policy"], adaptive=o["adaptive"],
                adaptive_confidence=o["adaptive_confidence"] or None, round_size=o["round_size"],
                chunk_size=o["chunk_size"], enqueue=not o["inline"],
            )
        except services.ScoringError as exc:
            raise CommandError(str(exc)) from None
        if o["inline"]:
            chunks = services.scoring_run_chunks(run_id=run.pk)
            with tqdm(total=run.total, unit="item", desc=f"score run #{run.pk}", disable=o["json"]) as bar:
                for chunk in chunks:
                    services.scoring_chunk_execute(run_id=run.pk, item_ids=chunk)
                    bar.update(len(chunk))
        elif o["wait"] or o["json"]:
            with tqdm(total=run.total, unit="item", desc=f"score run #{run.pk}", disable=o["json"]) as bar:
                while True:
                    run.refresh_from_db()
                    bar.n = run.done + run.failed
                    bar.refresh()
                    if run.state in (ScoringRun.State.DONE, ScoringRun.State.FAILED):
                        break
                    time.sleep(0.5)
        run.refresh_from_db()
        if o["json"]:
            self.stdout.write(json.dumps({"run": run.pk, "state": run.state, "total": run.total,
                                          "failed": run.failed, **run.summary.get("buckets", {})}))
        elif run.state == ScoringRun.State.DONE:
            b = run.summary["buckets"]
            self.stdout.write(f"run #{run.pk}: easy {b['easy']}, medium {b['medium']}, hard {b['hard']}, "
                              f"failed {run.failed} of {run.total}")
        else:
            self.stdout.write(f"run #{run.pk} queued for {run.total} items; follow it in the UI or with --wait")
