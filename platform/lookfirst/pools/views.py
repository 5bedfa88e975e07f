from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render

from lookfirst.ingest.forms import UploadForm
from lookfirst.pools import selectors
from lookfirst.pools.models import Image, Pool


def pool_list(request):
    pools = list(selectors.pool_list_with_counts())
    for pool in pools:
        pool.bucket_parts = {"easy": pool.easy, "medium": pool.medium, "hard": pool.hard,
                             "unscored": pool.item_count - pool.easy - pool.medium - pool.hard}
    return render(request, "pools/list.html", {"pools": pools, "form": UploadForm()})


def pool_detail(request, name: str):
    pool = get_object_or_404(Pool, name=name)
    buckets = selectors.pool_bucket_counts(pool=pool)
    bucket_totals = {b: sum(buckets.get(b, {}).values()) for b in ("easy", "medium", "hard", "unscored")}
    return render(request, "pools/detail.html", {
        "pool": pool,
        "buckets": buckets,
        "bucket_totals": bucket_totals,
        "kept": sum(bucket_totals.values()),
        "answer_types": selectors.pool_answer_type_counts(pool=pool),
        "sources": selectors.pool_source_counts(pool=pool),
        "pass_hist": selectors.pool_histogram(pool=pool, column="pass_rate"),
        "clip_hist": selectors.pool_histogram(pool=pool, column="clip_sim", low=-0.2, high=1.0, bins=24),
        "conf_hist": selectors.pool_histogram(pool=pool, column="bucket_confidence", bins=10),
        "near_dups": selectors.pool_near_duplicate_groups(pool=pool),
        "runs": pool.ingest_runs.select_related("created_by")[:10],
        "scoring_runs": pool.scoring_runs.select_related("policy", "created_by")[:10],
        "form": UploadForm(initial={"pool": pool.name}),
    })


def scoring_run_status(request, run_id: int):
    from lookfirst.scoring.models import ScoringRun

    run = get_object_or_404(ScoringRun, pk=run_id)
    return render(request, "pools/_scoring_run.html", {"run": run})


def image_file(request, sha256: str):
    image = get_object_or_404(Image, sha256=sha256)
    path = Path(settings.MEDIA_ROOT) / image.relative_path
    if not path.exists():
        raise Http404("image file missing from the media folder")
    response = FileResponse(open(path, "rb"))
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
