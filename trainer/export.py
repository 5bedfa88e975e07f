"""Read a LookFirst export directory: check it, then load one split as a TRL-ready dataset.

The contract (written by the platform, see docs/trainer.md):

    EXPORT/manifest.json   {"lookfirst_export": 1, "format": "trl" | "easyr1", "rule", "stages": [...],
                            "splits": {name: {"file", "rows"}}, "files": {relative path: sha256}, ...}
    EXPORT/<split>.parquet (TRL) or <split>.jsonl / .parquet (EasyR1), EXPORT/images/<sha>.png

`read_manifest` checks the manifest and the sha256 of every file it lists before anything else happens, so a
corrupt or half-copied export is refused with the name of the first bad file. `load_split` returns a
`datasets.Dataset` in one layout whatever the format: prompt (a conversation with {"type": "image"}
blocks), images (decoded PIL images), answer (None when unlabelled), answer_type, key_words, description,
item_id, plus any other column (which TRL passes to the reward functions).

Only the standard library is imported at module level: `trainer run` checks an export without torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

EXPORT_VERSION = 1
FORMATS = ("trl", "easyr1")
IMAGE_PLACEHOLDER = "<image>"  # EasyR1's marker in `problem`
_HASH_CHUNK = 1 << 20


class ExportError(ValueError):
    """An export directory that cannot be trained on; the message names the file and says why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(export_dir: str | Path, verify_files: bool = True) -> dict[str, Any]:
    """The parsed manifest of `export_dir`, after checking its shape and (by default) every file's sha256.

    Raises ExportError naming the first file that is missing, unlisted-but-needed or whose bytes differ.
    """
    export_dir = Path(export_dir)
    manifest_path = export_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ExportError(f"{export_dir} is not a LookFirst export: {manifest_path} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{manifest_path} is not valid JSON: {exc}") from exc

    if manifest.get("lookfirst_export") != EXPORT_VERSION:
        raise ExportError(f"{manifest_path}: lookfirst_export is {manifest.get('lookfirst_export')!r}, "
                          f"this trainer reads version {EXPORT_VERSION}")
    if manifest.get("format") not in FORMATS:
        raise ExportError(f"{manifest_path}: format {manifest.get('format')!r} is not one of {FORMATS}")
    for key, kind in (("stages", list), ("splits", dict), ("files", dict), ("rule", str)):
        if not isinstance(manifest.get(key), kind):
            raise ExportError(f"{manifest_path}: '{key}' is missing or not a {kind.__name__}")
    for split in [*manifest["stages"], "eval"]:
        entry = manifest["splits"].get(split)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ExportError(f"{manifest_path}: split {split!r} is missing from 'splits'")
        if entry["file"] not in manifest["files"]:
            raise ExportError(f"{manifest_path}: split file {entry['file']} has no sha256 in 'files'")

    if verify_files:
        verify_files_against_manifest(export_dir, manifest)
    return manifest


def verify_files_against_manifest(export_dir: Path, manifest: dict[str, Any]) -> None:
    """sha256 of every listed file; the first missing or different file raises ExportError naming it."""
    root = export_dir.resolve()
    for relative, expected in sorted(manifest["files"].items()):
        path = (export_dir / relative).resolve()
        if root not in path.parents:
            raise ExportError(f"manifest lists {relative!r}, which is outside the export directory")
        if not path.is_file():
            raise ExportError(f"file {relative} listed in the manifest is missing from {export_dir}")
        actual = sha256_file(path)
        if actual != expected:
            raise ExportError(f"sha256 mismatch for {relative}: manifest says {expected}, file has {actual} "
                              f"(the export is corrupt or was modified; re-export the snapshot)")


# ---------------------------------------------------------------- loading one split


def load_split(export_dir: str | Path, manifest: dict[str, Any], split: str, cache_dir: str | Path | None = None):
    """The rows of `split` as a `datasets.Dataset` in the trainer's one layout (see the module docstring)."""
    export_dir = Path(export_dir)
    entry = manifest["splits"].get(split)
    if entry is None:
        raise ExportError(f"the export has no split {split!r}; it has {sorted(manifest['splits'])}")
    path = export_dir / entry["file"]
    if manifest["format"] == "trl":
        dataset = _load_trl(path, export_dir, cache_dir)
    else:
        dataset = _load_easyr1(path, export_dir)
    for column in ("prompt", "images", "answer", "item_id"):
        if column not in dataset.column_names:
            raise ExportError(f"{entry['file']}: column {column!r} is missing")
    return dataset


def _load_trl(path: Path, export_dir: Path, cache_dir: str | Path | None):
    import pyarrow.parquet as pq
    from datasets import Dataset, Image, List

    if pq.ParquetFile(path).metadata.num_rows == 0:
        return Dataset(pq.read_table(path))  # an empty split (e.g. a tiny eval) keeps its columns; no data to cast
    dataset = Dataset.from_parquet(str(path), cache_dir=str(cache_dir) if cache_dir else None)
    if "images" in dataset.column_names:
        # Structs with bytes decode as they are; a struct with only a path is read relative to the export.
        dataset = dataset.cast_column("images", List(Image(decode=False)))
        dataset = dataset.map(lambda row: {"images": [_absolute(image, export_dir) for image in row["images"]]})
        dataset = dataset.cast_column("images", List(Image(decode=True)))
    return dataset


def _absolute(image: dict[str, Any], export_dir: Path) -> dict[str, Any]:
    """A struct without bytes names a file relative to the export ("images/<sha>.png" or "<sha>.png")."""
    if image.get("bytes") is None and image.get("path") and not Path(image["path"]).is_absolute():
        for candidate in (export_dir / image["path"], export_dir / "images" / image["path"]):
            if candidate.is_file():
                return {"bytes": None, "path": str(candidate)}
        raise ExportError(f"image {image['path']} has no bytes and is not a file in {export_dir}")
    return image


def _load_easyr1(path: Path, export_dir: Path):
    from datasets import Dataset, Features, Image, List, Value

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    else:
        with open(path, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    rows = [_easyr1_row(record, export_dir, path.name, number) for number, record in enumerate(records, 1)]
    features = {
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(Image()),
        "answer": Value("string"),
        "answer_type": Value("string"),
        "key_words": List(Value("string")),
        "description": Value("string"),
        "item_id": Value("int64"),
    }
    dataset = Dataset.from_list(rows)  # infers the extra columns (bucket, pass_rate, n_correct, ...)
    return dataset.cast(Features({**dataset.features, **features}))


def _easyr1_row(record: dict[str, Any], export_dir: Path, file_name: str, number: int) -> dict[str, Any]:
    problem = record.get("problem")
    if not isinstance(problem, str):
        raise ExportError(f"{file_name} row {number}: 'problem' is missing or not text")
    images = [_easyr1_image(image, export_dir, file_name, number) for image in record.get("images") or []]
    row = {key: value for key, value in record.items() if key not in ("problem", "images")}
    row["prompt"] = [{"role": "user", "content": _blocks(problem, len(images), file_name, number)}]
    row["images"] = images
    row["answer"] = record.get("answer") if record.get("answer") not in ("", None) else None
    row["answer_type"] = record.get("answer_type") or "auto"
    row["key_words"] = list(record.get("key_words") or [])
    row["description"] = record.get("description")
    row["item_id"] = int(record.get("item_id", number))
    return row


def _easyr1_image(image: Any, export_dir: Path, file_name: str, number: int) -> dict[str, Any]:
    if isinstance(image, dict):  # an HF {"bytes", "path"} struct
        return _absolute({"bytes": image.get("bytes"), "path": image.get("path")}, export_dir)
    if isinstance(image, str):
        resolved = Path(image) if Path(image).is_absolute() else export_dir / image
        if not resolved.is_file():
            raise ExportError(f"{file_name} row {number}: image {image} does not exist")
        return {"bytes": None, "path": str(resolved)}
    raise ExportError(f"{file_name} row {number}: an image is neither a path nor a {{bytes, path}} struct")


def _blocks(problem: str, n_images: int, file_name: str, number: int) -> list[dict[str, Any]]:
    """EasyR1 text with <image> markers -> typed content blocks; images without markers go first."""
    pieces = problem.split(IMAGE_PLACEHOLDER)
    n_markers = len(pieces) - 1
    if n_markers not in (0, n_images):
        raise ExportError(f"{file_name} row {number}: {n_markers} {IMAGE_PLACEHOLDER} markers for {n_images} images")
    blocks: list[dict[str, Any]] = []
    if n_markers == 0:
        blocks = [{"type": "image", "text": None} for _ in range(n_images)]
        pieces = [problem]
    for i, piece in enumerate(pieces):
        if i > 0:
            blocks.append({"type": "image", "text": None})
        if piece:
            blocks.append({"type": "text", "text": piece})
    return blocks
