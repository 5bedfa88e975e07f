from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from lookfirst.ingest import services as ingest


def make_pool(tmp_path: Path, name: str, rows: list[tuple[str, str | None]], source: str = "data.jsonl"):
    """A pool with one distinct image per (question, answer) row; returns (pool, items in row order)."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    lines = []
    for i, (question, answer) in enumerate(rows):
        buffer = io.BytesIO()
        PILImage.new("RGB", (32, 32), (i * 7 % 256, i * 13 % 256, 200)).save(buffer, format="PNG")
        (folder / f"{i}.png").write_bytes(buffer.getvalue())
        lines.append(json.dumps({"problem": f"<image>{question}", "answer": answer, "images": [f"{i}.png"],
                                 "description": f"picture number {i}"}))
    (folder / source).write_text("\n".join(lines) + "\n")
    run = ingest.ingest_path(user=None, pool_name=name, path=folder / source)
    assert run.ingested == len(rows), run.errors.all()
    return run.pool, list(run.pool.items.order_by("source_row"))


@pytest.fixture(autouse=True)
def _fresh_backends():
    from workers.inference import backends, clip

    backends.get_sampler.cache_clear()
    clip.get_clip.cache_clear()
    yield
