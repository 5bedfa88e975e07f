"""Write a LookFirst export directory exactly as the platform does (the trainer's input contract).

    EXPORT/manifest.json     {"lookfirst_export": 1, "format", "rule", "eval_seed", "eval_fraction",
                              "snapshot": {...}, "stages": [...], "splits": {name: {"file", "rows"}},
                              "files": {relative path: sha256}}   (every file except manifest.json)
    EXPORT/<split>.parquet   TRL format: prompt (conversation with {"type": "image"} blocks), images (HF Image
                             structs {bytes, path: "<sha>.png"}, with the `huggingface` features metadata),
                             answer, answer_type, key_words, description, item_id, bucket, pass_rate, stage,
                             pseudo_label
    EXPORT/<split>.jsonl     EasyR1 format: problem (with <image> placeholders), answer, images (paths relative to
                             EXPORT), key_words, description, item_id, answer_type, bucket, pass_rate, n_correct,
                             n_samples, clip_sim
    EXPORT/images/<sha>.png  EasyR1: every image once, named by the sha256 of its bytes (TRL embeds the bytes;
                             with embed_images=False it writes path-only structs and these files instead)

Items are small PIL drawings of one coloured shape on white; answers and key words follow from the drawing, so
tests can hand-make completions that score exactly.

>>> import tempfile, json, pathlib
>>> folder = write_export(pathlib.Path(tempfile.mkdtemp()) / "export", rows_per_stage=4, eval_rows=2)
>>> json.loads((folder / "manifest.json").read_text())["splits"]["eval"]
{'file': 'eval.parquet', 'rows': 2}
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

STAGES = {
    "pebr-2stage": ["perception", "reasoning"],
    "capcurriculum-3stage": ["perception", "textual_reasoning", "visual_reasoning"],
    "merged": ["merged"],
}
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220), "yellow": (230, 200, 20)}
SHAPES = ("square", "circle", "triangle")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def draw(colour: str, shape: str, size: int = 56) -> bytes:
    """PNG bytes of one shape of `colour` on a white `size` x `size` canvas."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    box = (size // 5, size // 5, size - size // 5, size - size // 5)
    if shape == "square":
        pen.rectangle(box, fill=COLOURS[colour])
    elif shape == "circle":
        pen.ellipse(box, fill=COLOURS[colour])
    else:
        pen.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=COLOURS[colour])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_items(stage: str, n: int, start_id: int, unlabelled_every: int = 0, text_only: bool = False,
               key_words: list[str] | None = None) -> list[dict]:
    """n items of `stage`; every `unlabelled_every`-th one has no answer (label-free reward path)."""
    colours, items = list(COLOURS), []
    for i in range(n):
        colour, shape = colours[i % len(colours)], SHAPES[(i // len(colours)) % len(SHAPES)]
        labelled = not (unlabelled_every and i % unlabelled_every == unlabelled_every - 1)
        items.append({
            "item_id": start_id + i,
            "stage": stage,
            "question": (f"A {shape} is drawn in {colour}. What colour is the {shape}?" if text_only
                         else f"What colour is the {shape}?"),
            "png": [] if text_only else [draw(colour, shape)],
            "answer": colour if labelled else None,
            "answer_type": "free_text",
            "key_words": list(key_words) if key_words is not None else [colour, shape],
            "description": f"A {colour} {shape} on a white background.",
            "bucket": "easy" if stage == "perception" else "medium",
            "pass_rate": 1.0 if stage == "perception" else 0.5,
            "n_correct": 8 if stage == "perception" else 4,
        })
    return items


def write_export(
    folder: Path,
    *,
    rule: str = "pebr-2stage",
    fmt: str = "trl",
    rows_per_stage: int = 8,
    eval_rows: int = 4,
    unlabelled_every: int = 4,
    key_words: list[str] | None = None,
    embed_images: bool = True,
    empty_stages: tuple[str, ...] = (),
) -> Path:
    """Write an export of `rule` in `fmt` ("trl" or "easyr1") under `folder` and return `folder`.

    Reasoning-type stages get an unlabelled item every `unlabelled_every` rows (0: all labelled).
    CapCurriculum's textual_reasoning stage is text only (no images). `key_words` replaces every item's key
    words (training tests use single letters, which a random model's text often contains: a dense reward).
    Stages in `empty_stages` get no rows (as when a pool has no text-only items).
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    stages = STAGES[rule]
    splits: dict[str, list[dict]] = {}
    next_id = 1
    for stage in stages:
        splits[stage] = make_items(stage, 0 if stage in empty_stages else rows_per_stage, next_id,
                                   unlabelled_every=0 if stage == "perception" else unlabelled_every,
                                   text_only=stage == "textual_reasoning", key_words=key_words)
        next_id += rows_per_stage
    splits["eval"] = make_items(stages[-1], eval_rows, next_id)

    writes_files = fmt != "trl" or not embed_images
    for items in splits.values():
        for item in items:
            item["image_paths"] = []
            for png in item["png"]:
                relative = f"images/{sha256_bytes(png)}.png"
                if writes_files:
                    (folder / relative).write_bytes(png)
                item["image_paths"].append(relative)
    if not writes_files:
        (folder / "images").rmdir()

    split_files = {}
    for split, items in splits.items():
        if fmt == "trl":
            split_files[split] = _write_trl(folder, split, items, embed_images)
        else:
            split_files[split] = _write_easyr1(folder, split, items)

    files = {
        path.relative_to(folder).as_posix(): sha256_bytes(path.read_bytes())
        for path in sorted(folder.rglob("*")) if path.is_file() and path.name != "manifest.json"
    }
    manifest = {
        "lookfirst_export": 1,
        "format": fmt,
        "rule": rule,
        "eval_seed": 0,
        "eval_fraction": 0.1,
        "snapshot": {"id": 1, "pool": "shapes", "name": "fixture", "version": 1, "hash": "0" * 64},
        "stages": stages,
        "splits": {split: {"file": split_files[split], "rows": len(items)} for split, items in splits.items()},
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def _write_trl(folder: Path, split: str, items: list[dict], embed_images: bool) -> str:
    import pyarrow.parquet as pq
    from datasets import Dataset, Features, Image, List, Value

    features = Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(Image()),
        "answer": Value("string"),
        "answer_type": Value("string"),
        "key_words": List(Value("string")),
        "description": Value("string"),
        "item_id": Value("int64"),
        "bucket": Value("string"),
        "pass_rate": Value("float64"),
        "stage": Value("string"),
        "pseudo_label": Value("bool"),
    })
    rows = []
    for item in items:
        content = [{"type": "image", "text": None} for _ in item["png"]]
        content.append({"type": "text", "text": item["question"]})
        rows.append({
            "prompt": [{"role": "user", "content": content}],
            "images": [{"bytes": png, "path": path.removeprefix("images/")} if embed_images
                       else {"bytes": None, "path": path} for png, path in zip(item["png"], item["image_paths"])],
            **{key: item[key] for key in ("answer", "answer_type", "key_words", "description", "item_id", "bucket",
                                          "pass_rate", "stage")},
            "pseudo_label": False,
        })
    name = f"{split}.parquet"
    # The Arrow table carries the `huggingface` features metadata; writing it directly (not to_parquet) never
    # opens the images' paths, which are relative to the export.
    pq.write_table(Dataset.from_list(rows, features=features).data.table, folder / name)
    return name


def _write_easyr1(folder: Path, split: str, items: list[dict]) -> str:
    name = f"{split}.jsonl"
    with open(folder / name, "w", encoding="utf-8") as out:
        for item in items:
            row = {
                "problem": "<image>" * len(item["png"]) + item["question"],
                "answer": item["answer"],
                "images": item["image_paths"],
                "key_words": item["key_words"],
                "description": item["description"],
                "item_id": item["item_id"],
                "answer_type": item["answer_type"],
                "bucket": item["bucket"],
                "pass_rate": item["pass_rate"],
                "n_correct": item["n_correct"],
                "n_samples": 8,
                "clip_sim": 0.31,
                "stage": item["stage"],
                "pseudo_label": False,
            }
            out.write(json.dumps(row, sort_keys=True) + "\n")
    return name
