"""Export files: one row builder per trainer format, streaming writers, and the manifest. No Django here.

Layout (the trainer reads exactly this):

    OUT/manifest.json            {"lookfirst_export": 1, "format", "rule", "eval_seed", "eval_fraction",
                                  "snapshot": {"id", "pool", "name", "version", "hash"}, "stages": [...],
                                  "splits": {split: {"file", "rows"}}, "files": {relative path: sha256}}
    OUT/<split>.parquet | OUT/<split>.jsonl
    OUT/images/<sha256>.<ext>    (easyr1 and jsonl; rows name them relative to OUT)

Same snapshot + same options -> the same bytes: fixed parquet settings, row groups cut at fixed row and
byte counts, sorted JSON keys, nothing time-dependent in any file.

Loading one split: TRL `datasets.load_dataset("parquet", data_files="OUT/perception.parquet")` (images
decode to PIL through the `huggingface` schema metadata); EasyR1 `data.train_files=OUT/perception.jsonl
data.image_dir=OUT data.prompt_key=problem` (name the file: EasyR1 reads every file of a folder); verl
`data.train_files=OUT/perception.parquet`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from lookfirst.snapshots.rules import EVAL

EXPORT_VERSION = 1
IMAGE_TOKEN = "<image>"
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "version": "2.6", "use_dictionary": True,
                   "write_statistics": True}
# Embedded image bytes share one Arrow array per row group: keep groups far below the 2 GB array limit.
ROWS_PER_GROUP = {True: 1024, False: 8192}
BYTES_PER_GROUP = 64 * 1024**2


class ExportFormatError(ValueError):
    pass


@dataclass(frozen=True)
class ImageFile:
    sha256: str
    ext: str

    @property
    def name(self) -> str:
        return f"{self.sha256}.{self.ext}"

    @property
    def relative_path(self) -> str:
        return f"images/{self.name}"


def _text_only_question(question: str) -> str:
    return question.replace(IMAGE_TOKEN, "").strip()


def _placeholder_question(question: str, n_images: int) -> str:
    """The question with exactly one <image> per image (prepended when the count is off)."""
    if question.count(IMAGE_TOKEN) == n_images:
        return question
    return IMAGE_TOKEN * n_images + _text_only_question(question)


def exported_answer(item: dict) -> tuple[str | None, bool]:
    """(answer, is_pseudo_label): an unlabelled item with a majority-vote answer exports that answer."""
    if item["answer"] is None and item.get("pseudo_answer") is not None:
        return item["pseudo_answer"], True
    return item["answer"], False


# ------------------------------------------------------------------ row builders, one per format
def trl_row(item: dict, images: list[ImageFile], blobs: list[bytes], *, stage: str, split: str, index: int,
            pool: str) -> dict:
    answer, pseudo = exported_answer(item)
    content = [{"type": "image", "text": None} for _ in images]
    content.append({"type": "text", "text": _text_only_question(item["question"])})
    return {
        "prompt": [{"role": "user", "content": content}],
        "images": [{"bytes": blob, "path": image.name} for image, blob in zip(images, blobs)],
        "answer": answer, "answer_type": item["answer_type"], "key_words": list(item["key_words"]),
        "description": item["description"], "item_id": item["item_id"], "bucket": item["bucket"],
        "pass_rate": item["pass_rate"], "stage": stage, "pseudo_label": pseudo,
    }


def easyr1_row(item: dict, images: list[ImageFile], blobs: list[bytes], *, stage: str, split: str, index: int,
               pool: str) -> dict:
    answer, pseudo = exported_answer(item)
    return {
        "problem": _placeholder_question(item["question"], len(images)), "answer": answer,
        "images": [image.relative_path for image in images], "key_words": list(item["key_words"]),
        "description": item["description"], "item_id": item["item_id"], "answer_type": item["answer_type"],
        "bucket": item["bucket"], "pass_rate": item["pass_rate"], "n_correct": item["n_correct"],
        "n_samples": item["n_samples"], "clip_sim": item["clip_sim"], "stage": stage, "pseudo_label": pseudo,
    }


def verl_row(item: dict, images: list[ImageFile], blobs: list[bytes], *, stage: str, split: str, index: int,
             pool: str) -> dict:
    answer, pseudo = exported_answer(item)
    question = _placeholder_question(item["question"], len(images))
    return {
        "data_source": f"lookfirst/{pool}",
        "prompt": [{"role": "user", "content": question}],
        "images": [{"bytes": blob, "path": image.name} for image, blob in zip(images, blobs)],
        "ability": stage,
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": split, "index": index, "answer": answer, "question": question,
                       "item_id": item["item_id"], "pass_rate": item["pass_rate"], "bucket": item["bucket"],
                       "key_words": list(item["key_words"]), "pseudo_label": pseudo, "stage": stage},
    }


def jsonl_row(item: dict, images: list[ImageFile], blobs: list[bytes], *, stage: str, split: str, index: int,
              pool: str) -> dict:
    answer, pseudo = exported_answer(item)
    row = {key: (list(value) if isinstance(value, tuple) else value) for key, value in item.items()}
    row.update({"answer": answer, "pseudo_label": pseudo,
                "images": [image.relative_path for image in images], "stage": stage, "split": split, "index": index,
                "problem": _placeholder_question(item["question"], len(images))})
    return row


_STR, _F64, _I64, _BOOL = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_IMAGE = pa.struct([("bytes", pa.binary()), ("path", _STR)])
_BLOCK = pa.struct([("type", _STR), ("text", _STR)])  # {"type": "image"} or {"type": "text", "text": ...}
TRL_SCHEMA = pa.schema([
    ("prompt", pa.list_(pa.struct([("role", _STR), ("content", pa.list_(_BLOCK))]))),
    ("images", pa.list_(_IMAGE)), ("answer", _STR), ("answer_type", _STR), ("key_words", pa.list_(_STR)),
    ("description", _STR), ("item_id", _I64), ("bucket", _STR), ("pass_rate", _F64), ("stage", _STR),
    ("pseudo_label", _BOOL),
])
EASYR1_SCHEMA = pa.schema([
    ("problem", _STR), ("answer", _STR), ("images", pa.list_(_STR)), ("key_words", pa.list_(_STR)),
    ("description", _STR), ("item_id", _I64), ("answer_type", _STR), ("bucket", _STR), ("pass_rate", _F64),
    ("n_correct", _I64), ("n_samples", _I64), ("clip_sim", _F64), ("stage", _STR), ("pseudo_label", _BOOL),
])
VERL_SCHEMA = pa.schema([
    ("data_source", _STR), ("prompt", pa.list_(pa.struct([("role", _STR), ("content", _STR)]))),
    ("images", pa.list_(_IMAGE)), ("ability", _STR),
    ("reward_model", pa.struct([("style", _STR), ("ground_truth", _STR)])),
    ("extra_info", pa.struct([("split", _STR), ("index", _I64), ("answer", _STR), ("question", _STR),
                              ("item_id", _I64), ("pass_rate", _F64), ("bucket", _STR),
                              ("key_words", pa.list_(_STR)), ("pseudo_label", _BOOL), ("stage", _STR)])),
])


def hf_features(schema: pa.Schema, image_columns: Iterable[str] = ()) -> dict:
    """The `datasets` feature description of `schema`; image columns become lists of Image features.

    Lists are written as JSON lists, the form every `datasets` version reads as a list feature.
    """
    def feature(kind: pa.DataType):
        if pa.types.is_list(kind):
            return [feature(kind.value_type)]
        if pa.types.is_struct(kind):
            return {kind.field(i).name: feature(kind.field(i).type) for i in range(kind.num_fields)}
        if pa.types.is_binary(kind):
            return {"dtype": "binary", "_type": "Value"}
        return {"dtype": str(kind) if not pa.types.is_string(kind) else "string", "_type": "Value"}

    images = set(image_columns)
    return {field.name: ([{"_type": "Image"}] if field.name in images else feature(field.type)) for field in schema}


@dataclass(frozen=True)
class FormatSpec:
    name: str
    file_type: str  # "parquet" | "jsonl"
    embeds_images: bool
    build: Callable[..., dict]
    schema: pa.Schema | None = None
    image_columns: tuple[str, ...] = ()

    def parquet_schema(self) -> pa.Schema:
        assert self.schema is not None
        info = {"info": {"features": hf_features(self.schema, self.image_columns)}}
        return self.schema.with_metadata({b"huggingface": json.dumps(info, sort_keys=True).encode()})


FILE_TYPES = {"trl": ("parquet",), "verl": ("parquet",), "easyr1": ("jsonl", "parquet"), "jsonl": ("jsonl",)}


def format_spec(name: str, file_type: str = "") -> FormatSpec:
    if name not in FILE_TYPES:
        raise ExportFormatError(f"unknown format {name!r}; known: {', '.join(FILE_TYPES)}")
    file_type = file_type or FILE_TYPES[name][0]
    if file_type not in FILE_TYPES[name]:
        raise ExportFormatError(f"format {name} writes {' or '.join(FILE_TYPES[name])}, not {file_type!r}")
    if name == "trl":
        return FormatSpec("trl", "parquet", True, trl_row, TRL_SCHEMA, ("images",))
    if name == "verl":
        return FormatSpec("verl", "parquet", True, verl_row, VERL_SCHEMA, ("images",))
    if name == "easyr1":
        return FormatSpec("easyr1", file_type, False, easyr1_row, EASYR1_SCHEMA if file_type == "parquet" else None)
    return FormatSpec("jsonl", "jsonl", False, jsonl_row)


# ------------------------------------------------------------------ writers
class ParquetSplitWriter:
    def __init__(self, path: Path, schema: pa.Schema, *, max_rows: int, max_bytes: int = BYTES_PER_GROUP) -> None:
        self.schema, self.max_rows, self.max_bytes = schema, max_rows, max_bytes
        self.writer = pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS)
        self.buffer: list[dict] = []
        self.buffered_bytes = 0
        self.rows = 0
        self.rows_seen = 0

    def add(self, row: dict, nbytes: int = 0) -> None:
        self.rows_seen += 1
        self.buffer.append(row)
        self.buffered_bytes += nbytes
        if len(self.buffer) >= self.max_rows or self.buffered_bytes >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = pa.Table.from_pylist(self.buffer, schema=self.schema)
            self.writer.write_table(table, row_group_size=len(self.buffer))
            self.rows += len(self.buffer)
            self.buffer, self.buffered_bytes = [], 0

    def close(self) -> int:
        self.flush()
        self.writer.close()
        return self.rows


class JsonlSplitWriter:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", encoding="utf-8", newline="\n")
        self.rows = self.rows_seen = 0

    def add(self, row: dict, nbytes: int = 0) -> None:
        self.file.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        self.rows += 1
        self.rows_seen += 1

    def close(self) -> int:
        self.file.close()
        return self.rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ the export
# (split, stage, item): the item's frozen fields plus "images": [ImageFile], in the rule's order
RoutedRows = Iterable[tuple[str, str, dict]]
ImageSource = Callable[[ImageFile], "str | Path"]  # where the image's file is


def _read(path: str | Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def write_export(*, out: Path, spec: FormatSpec, rule: str, stages: Iterable[str], rows: RoutedRows,
                 image_source: ImageSource, header: dict, progress: Callable[[int], None] | None = None,
                 every: int = 1000) -> dict:
    """Write `rows` into one file per split of the (empty) folder `out`, then manifest.json; returns it.

    `header` carries eval_seed, eval_fraction and snapshot {id, pool, name, version, hash}. Every split file
    is open at once and rows go to theirs as they stream in, so memory stays bounded: a parquet writer
    holds one row group at most.
    """
    stages = list(stages)
    out.mkdir(parents=True, exist_ok=True)
    pool = header["snapshot"]["pool"]
    writers: dict[str, ParquetSplitWriter | JsonlSplitWriter] = {}
    for split in (*stages, EVAL):
        path = out / f"{split}.{spec.file_type}"
        writers[split] = (ParquetSplitWriter(path, spec.parquet_schema(), max_rows=ROWS_PER_GROUP[spec.embeds_images])
                          if spec.file_type == "parquet" else JsonlSplitWriter(path))
    copied: set[str] = set()
    written = 0
    for split, stage, item in rows:
        images = item.pop("images")
        blobs: list[bytes] = []
        if spec.embeds_images:
            blobs = [_read(image_source(image)) for image in images]
        else:
            for image in images:
                if image.name not in copied:
                    (out / "images").mkdir(exist_ok=True)
                    shutil.copyfile(image_source(image), out / image.relative_path)
                    copied.add(image.name)
        writer = writers[split]
        writer.add(spec.build(item, images, blobs, stage=stage, split=split, index=writer.rows_seen, pool=pool),
                   sum(len(blob) for blob in blobs))
        written += 1
        if progress is not None and written % every == 0:
            progress(written)
    splits = {split: {"file": f"{split}.{spec.file_type}", "rows": writer.close()} for split, writer in writers.items()}
    if progress is not None:
        progress(written)
    files = {path.relative_to(out).as_posix(): file_sha256(path)
             for path in sorted(out.rglob("*")) if path.is_file() and path.name != "manifest.json"}
    manifest = {
        "lookfirst_export": EXPORT_VERSION, "format": spec.name, "rule": rule,
        "eval_seed": header["eval_seed"], "eval_fraction": header["eval_fraction"],
        "snapshot": header["snapshot"], "stages": stages, "splits": splits, "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return manifest
