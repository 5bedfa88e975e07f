"""Reading an export (trainer/export.py): manifest checks, sha256 refusals, one layout from both formats."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.trainer.export_fixture import write_export
from trainer.export import ExportError, load_split, read_manifest


@pytest.mark.parametrize("fmt", ["trl", "easyr1"])
def test_both_formats_load_into_one_layout(tmp_path, fmt):
    folder = write_export(tmp_path / "export", fmt=fmt, rows_per_stage=4, eval_rows=2, unlabelled_every=2)
    manifest = read_manifest(folder)
    reasoning = load_split(folder, manifest, "reasoning", cache_dir=tmp_path / "cache")

    assert len(reasoning) == manifest["splits"]["reasoning"]["rows"] == 4
    row = reasoning[0]
    assert row["prompt"][0]["role"] == "user"
    blocks = row["prompt"][0]["content"]
    assert [b["type"] for b in blocks] == ["image", "text"]
    assert blocks[1]["text"] == "What colour is the square?"
    assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
    assert row["images"][0].size == (56, 56)
    assert (row["answer"], row["answer_type"], row["key_words"], row["item_id"]) == (
        "red", "free_text", ["red", "square"], 5)
    assert reasoning["answer"] == ["red", None, "blue", None]  # every second one unlabelled


def test_text_only_stage_has_no_images(tmp_path):
    folder = write_export(tmp_path / "export", rule="capcurriculum-3stage", fmt="easyr1", rows_per_stage=2)
    manifest = read_manifest(folder)
    textual = load_split(folder, manifest, "textual_reasoning")
    assert textual["images"] == [[], []]
    assert [b["type"] for b in textual[0]["prompt"][0]["content"]] == ["text"]


def test_trl_structs_without_bytes_read_the_image_files(tmp_path):
    folder = write_export(tmp_path / "export", rows_per_stage=2, eval_rows=1, embed_images=False)
    manifest = read_manifest(folder)
    assert any(name.startswith("images/") for name in manifest["files"])
    perception = load_split(folder, manifest, "perception", cache_dir=tmp_path / "cache")
    assert perception[0]["images"][0].getpixel((28, 28)) == (220, 30, 30)


def test_a_changed_byte_is_refused_naming_the_file(tmp_path):
    folder = write_export(tmp_path / "export", rows_per_stage=2, eval_rows=1)
    data = bytearray((folder / "reasoning.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "reasoning.parquet").write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"sha256 mismatch for reasoning\.parquet"):
        read_manifest(folder)


def test_a_missing_image_is_refused_naming_the_file(tmp_path):
    folder = write_export(tmp_path / "export", fmt="easyr1", rows_per_stage=2, eval_rows=1)
    image = sorted((folder / "images").iterdir())[0]
    image.unlink()
    with pytest.raises(ExportError, match=f"file images/{image.name} listed in the manifest is missing"):
        read_manifest(folder)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(lookfirst_export=2), "this trainer reads version 1"),
    (lambda m: m.update(format="verl"), "format 'verl' is not one of"),
    (lambda m: m["splits"].pop("eval"), "split 'eval' is missing"),
    (lambda m: m["files"].update({"../outside.txt": "0" * 64}), "outside the export directory"),
])
def test_a_bad_manifest_is_refused(tmp_path, change, message):
    folder = write_export(tmp_path / "export", rows_per_stage=2, eval_rows=1)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=message):
        read_manifest(folder)


def test_not_an_export(tmp_path):
    with pytest.raises(ExportError, match="manifest.json is missing"):
        read_manifest(tmp_path)


def test_an_empty_trl_split_loads_with_its_columns(tmp_path):
    """A tiny snapshot can have an empty held-out split; loading it must not fail."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainer.export import _load_trl

    schema = pa.schema([("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
                        ("answer", pa.string()), ("item_id", pa.int64())])
    pq.write_table(schema.empty_table(), tmp_path / "eval.parquet")
    dataset = _load_trl(tmp_path / "eval.parquet", tmp_path, None)
    assert (len(dataset), sorted(dataset.column_names)) == (0, ["answer", "images", "item_id", "prompt"])
