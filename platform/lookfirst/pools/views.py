from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render

from lookfirst.ingest.forms import UploadForm
from lookfirst.pools import selectors
from lookfirst.pools.models import Image, Pool


def pool_list(request):
    return render(request, "pools/list.html", {"pools": selectors.pool_list_with_counts(), "form": UploadForm()})


def pool_detail(request, name: str):
    pool = get_object_or_404(Pool, name=name)
    runs = pool.ingest_runs.select_related("created_by").prefetch_related("errors")[:20]
    return render(request, "pools/detail.html", {
        "pool": pool,
        "answer_types": selectors.pool_answer_type_counts(pool=pool),
        "sources": selectors.pool_source_counts(pool=pool),
        "runs": runs,
        "items": pool.items.filter(excluded=False).order_by("id")[:24],
        "form": UploadForm(initial={"pool": pool.name}),
    })


def image_file(request, sha256: str):
    image = get_object_or_404(Image, sha256=sha256)
    path = Path(settings.MEDIA_ROOT) / image.relative_path
    if not path.exists():
        raise Http404("image file missing from the media folder")
    response = FileResponse(open(path, "rb"))
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
