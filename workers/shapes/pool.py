"""Write a shapes pool to disk as an EasyR1 dataset: train.jsonl plus images/<sha256>.png."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from workers.shapes.questions import ShapesItem, generate_items

JSONL_NAME = "train.jsonl"
IMAGE_DIR = "images"


def png_bytes(img: Image.Image) -> bytes:
    """PNG with fixed parameters and no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def item_row(item: ShapesItem, image_paths: list[str]) -> dict:
    """One EasyR1 row; `scene` is a flat list of shapes, each tagged with its image index."""
    scene = [
        {**asdict(shape), "image": i} for i, s in enumerate(item.scenes) for shape in s.shapes
    ]
    return {
        "problem": item.question,
        "answer": item.answer,
        "images": image_paths,
        "key_words": item.key_words,
        "description": item.description,
        "answer_type": item.answer_type,
        "qtype": item.qtype,
        "stage": item.stage,
        "uid": item.uid,
        "scene": scene,
    }


def write_pool(
    out_dir: Path, n: int, seed: int, progress: Callable[[int], None] | None = None
) -> Path:
    """Write `n` items for `seed` under `out_dir`; byte-identical for equal (n, seed).

    Images are named by the SHA-256 of their PNG bytes, so exact duplicates share one file.
    `progress` is called with the number of items written so far after each item.
    """
    out_dir = Path(out_dir)
    (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    jsonl_path = out_dir / JSONL_NAME
    with jsonl_path.open("w", encoding="utf-8", newline="\n") as f:
        for done, (item, images) in enumerate(generate_items(n, seed), start=1):
            paths = []
            for img in images:
                data = png_bytes(img)
                rel = f"{IMAGE_DIR}/{hashlib.sha256(data).hexdigest()[:32]}.png"
                target = out_dir / rel
                if not target.exists():
                    target.write_bytes(data)
                paths.append(rel)
            f.write(json.dumps(item_row(item, paths), sort_keys=True, ensure_ascii=False) + "\n")
            if progress is not None:
                progress(done)
    return jsonl_path
