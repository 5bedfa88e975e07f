"""Small, valid sources in every input format, for reader tests and ingest round-trips.

Each `write_<format>_sample(dir)` writes 3 good rows (EasyR1's third row has 2 images, every other row 1)
under `dir` and returns the path to give `read_source`. `EXPECTED[format]` lists what reading it gives:
(question, answer, number of images) per row; `sample_png(name)` gives the exact bytes of each image.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

QUESTIONS = ("What color is the square?", "How many circles are there?", "Which shape is larger?")
ANSWERS = ("red", "2", "the circle")


def _expected(*counts: int) -> list[tuple[str, str, int]]:
    return [("<image>" * n + q, a, n) for q, a, n in zip(QUESTIONS, ANSWERS, counts)]


EXPECTED: dict[str, list[tuple[str, str, int]]] = {
    "easyr1": _expected(1, 1, 2),
    **{fmt: _expected(1, 1, 1) for fmt in ("verl", "trl", "llamafactory", "hf", "folder")},
    "llava": [("<image>\n" + q, a, 1) for q, a in zip(QUESTIONS, ANSWERS)],
}


def sample_png(name: str) -> bytes:
    """A tiny PNG whose colour and size come from the name, so every image of a sample is distinct."""
    digest = hashlib.sha256(name.encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", (8 + digest[3] % 8, 8 + digest[4] % 8), tuple(digest[:3])).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_pngs(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.png").write_bytes(sample_png(name))


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _write_json(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def _image_struct(name: str) -> dict:
    return {"bytes": sample_png(name), "path": f"{name}.png"}


def write_easyr1_sample(dir: Path) -> Path:
    """JSONL with image paths in images/; key_words and description on row 1, an extra column on row 2."""
    root = Path(dir) / "easyr1"
    _write_pngs(root / "images", "e1a", "e2a", "e3a", "e3b")
    return _write_jsonl(root / "train.jsonl", [
        {"problem": "<image>" + QUESTIONS[0], "answer": "red", "images": ["images/e1a.png"],
         "key_words": ["square", "red"], "description": "a red square"},
        {"problem": QUESTIONS[1], "answer": 2, "images": ["images/e2a.png"], "difficulty": "easy"},
        {"problem": "<image><image>" + QUESTIONS[2], "answer": "the circle",
         "images": ["images/e3a.png", "images/e3b.png"]},
    ])


def write_verl_sample(dir: Path) -> Path:
    """Parquet with embedded image bytes, verl's reward_model and extra_info."""
    path = Path(dir) / "verl" / "train.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"data_source": "shapes", "prompt": [{"role": "user", "content": "<image>" + q}],
         "images": [_image_struct(f"v{i}a")], "ability": "visual",
         "reward_model": {"style": "rule", "ground_truth": a},
         "extra_info": {"split": "train", "index": i, "answer": a, "question": q}}
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_trl_sample(dir: Path) -> Path:
    """Parquet with a conversational prompt of typed blocks and one embedded `image` per row."""
    path = Path(dir) / "trl" / "train.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"prompt": [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": q}]}],
         "image": _image_struct(f"t{i}a"), "solution": a}
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_llava_sample(dir: Path) -> Path:
    """A JSON array of LLaVA rows with image paths relative to the file."""
    root = Path(dir) / "llava"
    _write_pngs(root / "images", "l0a", "l1a", "l2a")
    return _write_json(root / "llava.json", [
        {"id": f"l{i}", "image": f"images/l{i}a.png",
         "conversations": [{"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))
    ])


def write_llamafactory_sample(dir: Path) -> Path:
    """A JSON array of LLaMA-Factory rows: messages and images."""
    root = Path(dir) / "llamafactory"
    _write_pngs(root / "images", "f0a", "f1a", "f2a")
    return _write_json(root / "mllm.json", [
        {"messages": [{"role": "user", "content": "<image>" + q}, {"role": "assistant", "content": a}],
         "images": [f"images/f{i}a.png"]}
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))
    ])


def write_hf_sample(dir: Path) -> Path:
    """A folder of two parquet shards (rows 1-2, then row 3) with an Image-feature column."""
    root = Path(dir) / "hf"
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = [{"image": _image_struct(f"h{i}a"), "question": q, "answer": a}
            for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    pq.write_table(pa.Table.from_pylist(rows[:2]), root / "data" / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), root / "data" / "train-00001-of-00002.parquet")
    return root


def write_folder_sample(dir: Path) -> Path:
    """An image folder: PNGs beside metadata.jsonl (file_name, question, answer)."""
    root = Path(dir) / "folder"
    _write_pngs(root, "d0a", "d1a", "d2a")
    _write_jsonl(root / "metadata.jsonl", [
        {"file_name": f"d{i}a.png", "question": q, "answer": a} for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))
    ])
    return root


def write_folder_zip_sample(dir: Path) -> Path:
    """The image folder as a .zip with metadata.csv; the same rows as `write_folder_sample`."""
    path = Path(dir) / "folder.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,question,answer"] + [f"d{i}a.png,{q},{a}" for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.csv", "\n".join(lines) + "\n")
        for i in range(3):
            archive.writestr(f"d{i}a.png", sample_png(f"d{i}a"))
    return path


WRITERS = {
    "easyr1": write_easyr1_sample,
    "verl": write_verl_sample,
    "trl": write_trl_sample,
    "llava": write_llava_sample,
    "llamafactory": write_llamafactory_sample,
    "hf": write_hf_sample,
    "folder": write_folder_sample,
}
