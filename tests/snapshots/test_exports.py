"""Exports: layout and manifest, byte-identical reruns, and each format read back the way its trainer reads it.

EasyR1's and verl's own readers are not installed; their loading code is mirrored here from
hiyouga/EasyR1 verl/utils/dataset.py (RLHFDataset: load_dataset(json|parquet), prompt split on <image>,
image paths joined to data.image_dir) and volcengine/verl verl/utils/dataset/rl_dataset.py +
vision_utils.process_image (parquet via datasets, content split on <image>, {"bytes"} structs opened with PIL).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import PermissionDenied
from PIL import Image as PILImage

from lookfirst.pools.models import Item, image_relative_path
from lookfirst.snapshots import formats, services
from lookfirst.snapshots.models import Export, SnapshotItem
from lookfirst.snapshots.rules import RULES, Row, eval_hash, is_text_only, plan

pytestmark = pytest.mark.django_db
FRACTION = 0.25


KEPT = (0, 1, 2, 3, 4, 5, 6, 9, 11)  # rows of the curated pool that pebr-2stage trains on


@pytest.fixture
def snapshot(pool_items, curator):
    pool, _ = pool_items
    return services.snapshot_create(user=curator, pool=pool, name="export me")


@pytest.fixture
def seed(pool_items):
    """An eval seed that holds out some, not all, of the kept items (item ids differ from run to run)."""
    _, items = pool_items
    return next(s for s in range(1000) if 1 <= sum(eval_hash(items[i].pk, s) < FRACTION for i in KEPT) <= 3)


def export(snapshot, out: Path, fmt: str, rule: str = "pebr-2stage", file_type: str = "", seed: int = 0,
           fraction: float = FRACTION) -> Export:
    created = services.export_create(user=None, snapshot=snapshot, fmt=fmt, rule=rule, out_dir=out,
                                     file_type=file_type, eval_seed=seed, eval_fraction=fraction, enqueue=False)
    done = services.export_execute(export_id=created.pk)
    assert done.state == Export.State.DONE, done.error
    return done


def expected_splits(items: list[Item], seed: int) -> dict[str, list[int]]:
    """pebr-2stage on the curated pool, computed from its definition."""
    perception = [items[i].pk for i in (0, 1, 2)]
    reasoning = [items[i].pk for i in (3, 4, 5, 6, 9, 11)]
    held = [i for i in perception + reasoning if eval_hash(i, seed) < FRACTION]
    return {"perception": [i for i in perception if i not in held],
            "reasoning": [i for i in reasoning if i not in held], "eval": sorted(held)}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt,file_type", [("trl", ""), ("easyr1", ""), ("easyr1", "parquet"), ("verl", ""),
                                           ("jsonl", "")])
def test_exporting_twice_gives_the_same_bytes_and_a_true_manifest(snapshot, pool_items, seed, tmp_path, fmt,
                                                                   file_type):
    _, items = pool_items
    first = export(snapshot, tmp_path / "a", fmt, file_type=file_type, seed=seed)
    second = export(snapshot, tmp_path / "b", fmt, file_type=file_type, seed=seed)

    files_a = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest == first.manifest == second.manifest
    ext = file_type or ("parquet" if fmt in ("trl", "verl") else "jsonl")
    splits = expected_splits(items, seed)
    assert manifest["splits"] == {name: {"file": f"{name}.{ext}", "rows": len(ids)} for name, ids in splits.items()}
    assert {k: v for k, v in manifest.items() if k not in ("splits", "files")} == {
        "lookfirst_export": 1, "format": fmt, "rule": "pebr-2stage", "eval_seed": seed, "eval_fraction": FRACTION,
        "snapshot": {"id": snapshot.pk, "pool": "snap", "name": "export me", "version": 1,
                     "hash": snapshot.manifest_hash},
        "stages": ["perception", "reasoning"],
    }
    assert manifest["files"] == {name: sha(tmp_path / "a" / name) for name in files_a if name != "manifest.json"}
    exported_ids = splits["perception"] + splits["reasoning"] + splits["eval"]
    image_files = {f"images/{items[i].image_shas[0]}.png" for i in range(12) if items[i].pk in exported_ids}
    assert {name for name in files_a if name.startswith("images/")} == (
        image_files if fmt in ("easyr1", "jsonl") else set())
    assert (first.total, first.progress) == (len(exported_ids), len(exported_ids))
    assert not list(tmp_path.glob(".*partial*"))


def test_trl_export_loads_in_datasets_as_conversations_with_pil_images(snapshot, pool_items, seed, tmp_path):
    import datasets

    _, items = pool_items
    by_id = {item.pk: item for item in items}
    export(snapshot, tmp_path / "trl", "trl", seed=seed)
    splits = expected_splits(items, seed)
    for split, ids in splits.items():
        data = datasets.load_dataset("parquet", data_files=str(tmp_path / "trl" / f"{split}.parquet"), split="train")
        assert data.column_names == ["prompt", "images", "answer", "answer_type", "key_words", "description",
                                     "item_id", "bucket", "pass_rate", "stage", "pseudo_label"]
        assert data["item_id"] == ids
        for row in data:
            item = by_id[row["item_id"]]
            question = item.question.replace("<image>", "")
            assert row["prompt"] == [{"role": "user", "content": [{"type": "image", "text": None},
                                                                  {"type": "text", "text": question}]}]
            assert all(isinstance(image, PILImage.Image) for image in row["images"])
            assert [image.size for image in row["images"]] == [(32, 32)]
            assert row["images"][0].tobytes() == PILImage.open(_media(item)).convert("RGB").tobytes()
            assert row["stage"] == ("perception" if item.bucket == "easy" else "reasoning")
            pseudo = item.pk == items[9].pk
            assert (row["answer"], row["pseudo_label"]) == (("4", True) if pseudo else (item.answer, False))
            assert (row["bucket"], row["pass_rate"], row["key_words"], row["description"], row["answer_type"]) == (
                item.bucket, item.pass_rate, item.key_words, item.description, item.answer_type)
    # row groups stay small: image bytes share one Arrow array per group
    assert pq.ParquetFile(tmp_path / "trl" / "reasoning.parquet").metadata.num_row_groups == 1


def _media(item: Item) -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / image_relative_path(item.image_shas[0], "png")


def _easyr1_messages(prompt: str) -> list[dict]:
    """EasyR1 RLHFDataset._build_messages (image branch)."""
    content = []
    for i, part in enumerate(prompt.split("<image>")):
        if i != 0:
            content.append({"type": "image"})
        if part:
            content.append({"type": "text", "text": part})
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_easyr1_export_reads_like_easyr1_reads_it(snapshot, pool_items, seed, tmp_path, file_type):
    import datasets

    _, items = pool_items
    by_id = {item.pk: item for item in items}
    out = tmp_path / "easyr1"
    export(snapshot, out, "easyr1", file_type=file_type, seed=seed)
    columns = ["problem", "answer", "images", "key_words", "description", "item_id", "answer_type", "bucket",
               "pass_rate", "n_correct", "n_samples", "clip_sim", "stage", "pseudo_label"]
    for split, ids in expected_splits(items, seed).items():
        path = out / f"{split}.{file_type}"
        # EasyR1: file_type = extension with jsonl -> json; load_dataset(file_type, data_files=path, split="train")
        data = datasets.load_dataset(file_type.replace("jsonl", "json"), data_files=str(path), split="train")
        if ids:
            assert sorted(data.column_names) == sorted(columns)
        assert data["item_id"] == ids
        for row in data:
            item = by_id[row["item_id"]]
            assert row["problem"] == item.question  # "<image>What is shown ...?"
            messages = _easyr1_messages(row["problem"])
            assert sum(block["type"] == "image" for block in messages[0]["content"]) == len(row["images"]) == 1
            assert row["images"] == [f"images/{item.image_shas[0]}.png"]
            image_path = Path(out, row["images"][0])  # os.path.join(data.image_dir, image)
            assert sha(image_path) == item.image_shas[0]
            with PILImage.open(image_path) as image:
                assert image.size == (32, 32)
            pseudo = item.pk == items[9].pk
            assert (row["answer"], row["pseudo_label"]) == (("4", True) if pseudo else (item.answer, False))
            assert (row["key_words"], row["description"], row["answer_type"], row["bucket"]) == (
                item.key_words, item.description, item.answer_type, item.bucket)
            assert (row["pass_rate"], row["n_correct"], row["n_samples"], row["clip_sim"]) == (
                item.pass_rate, item.n_correct, item.n_samples, item.clip_sim)


def test_verl_export_matches_verls_schema_column_by_column(snapshot, pool_items, seed, tmp_path):
    import datasets

    _, items = pool_items
    by_id = {item.pk: item for item in items}
    out = tmp_path / "verl"
    export(snapshot, out, "verl", seed=seed)
    schema = pq.read_schema(out / "perception.parquet")
    assert schema.names == ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
    assert schema.field("data_source").type == pa.string()
    assert schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert schema.field("images").type == pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    assert schema.field("reward_model").type == pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
    extra = schema.field("extra_info").type
    assert [extra.field(i).name for i in range(extra.num_fields)][:4] == ["split", "index", "answer", "question"]

    for split, ids in expected_splits(items, seed).items():
        raw = pq.read_table(out / f"{split}.parquet").to_pylist()
        assert [row["extra_info"]["item_id"] for row in raw] == ids
        for index, row in enumerate(raw):
            item = by_id[row["extra_info"]["item_id"]]
            pseudo = item.pk == items[9].pk
            answer = "4" if pseudo else item.answer
            assert row["data_source"] == "lookfirst/snap"
            assert row["prompt"] == [{"role": "user", "content": item.question}]
            assert row["ability"] == ("perception" if item.bucket == "easy" else "reasoning")
            assert row["reward_model"] == {"style": "rule", "ground_truth": answer}
            assert row["extra_info"] == {
                "split": split, "index": index, "answer": answer, "question": item.question, "item_id": item.pk,
                "pass_rate": item.pass_rate, "bucket": item.bucket, "key_words": item.key_words,
                "pseudo_label": pseudo, "stage": row["ability"]}
            # verl vision_utils.process_image: {"bytes": ...} -> PIL via BytesIO
            assert [image["path"] for image in row["images"]] == [f"{item.image_shas[0]}.png"]
            assert hashlib.sha256(row["images"][0]["bytes"]).hexdigest() == item.image_shas[0]
            assert PILImage.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB").size == (32, 32)
            # verl RLHFDataset._build_messages: the content string split on <image>
            segments = re.split("(<image>|<video>)", row["prompt"][0]["content"])
            assert segments.count("<image>") == len(row["images"])
        # verl reads the file with datasets.load_dataset("parquet", data_files=...)["train"]
        data = datasets.load_dataset("parquet", data_files=str(out / f"{split}.parquet"))["train"]
        assert len(data) == len(ids)


def test_jsonl_export_carries_every_field(snapshot, pool_items, tmp_path):
    _, items = pool_items
    out = tmp_path / "jsonl"
    export(snapshot, out, "jsonl")
    split = "eval" if eval_hash(items[9].pk, 0) < FRACTION else "reasoning"
    rows = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
    pseudo = next(row for row in rows if row["item_id"] == items[9].pk)
    assert pseudo == {
        "item_id": items[9].pk, "question": "<image>How many shapes are there?", "answer": "4", "pseudo_label": True,
        "pseudo_answer": "4", "answer_type": "none", "key_words": [], "description": "picture number 9",
        "image_shas": items[9].image_shas, "images": [f"images/{items[9].image_shas[0]}.png"],
        "problem": "<image>How many shapes are there?", "bucket": "medium", "bucket_source": "pseudo_label",
        "bucket_confidence": 0.75, "bucket_policy": "pebr", "pass_rate": 0.625, "n_correct": 5, "n_samples": 8,
        "clip_sim": 0.3, "clip_pct": 0.5, "excluded": False, "tags": [], "metadata": {}, "stage": "reasoning",
        "split": split, "index": rows.index(pseudo),
    }


def test_parquet_row_groups_are_cut_by_rows_and_bytes(tmp_path):
    schema = pa.schema([("x", pa.int64())])
    writer = formats.ParquetSplitWriter(tmp_path / "rows.parquet", schema, max_rows=2)
    for i in range(5):
        writer.add({"x": i})
    assert writer.close() == 5
    assert pq.ParquetFile(tmp_path / "rows.parquet").metadata.num_row_groups == 3
    writer = formats.ParquetSplitWriter(tmp_path / "bytes.parquet", schema, max_rows=100, max_bytes=10)
    for i in range(4):
        writer.add({"x": i}, nbytes=6)
    writer.close()
    assert pq.ParquetFile(tmp_path / "bytes.parquet").metadata.num_row_groups == 2


def test_refused_and_failed_exports_leave_nothing_behind(snapshot, pool_items, viewer, tmp_path, settings):
    _, items = pool_items
    with pytest.raises(PermissionDenied):
        services.export_create(user=viewer, snapshot=snapshot, fmt="trl", rule="merged", enqueue=False)
    for kwargs, message in (({"fmt": "llava", "rule": "merged"}, "unknown format"),
                            ({"fmt": "trl", "rule": "merged", "file_type": "jsonl"}, "parquet"),
                            ({"fmt": "trl", "rule": "five-stage"}, "unknown rule"),
                            ({"fmt": "trl", "rule": "merged", "eval_fraction": 1.0}, "eval_fraction")):
        with pytest.raises(services.ExportError, match=message):
            services.export_create(user=None, snapshot=snapshot, enqueue=False, **kwargs)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(services.ExportError, match="not empty"):
        services.export_create(user=None, snapshot=snapshot, fmt="trl", rule="merged", out_dir=busy, enqueue=False)
    assert Export.objects.count() == 0
    assert (busy / "keep.txt").read_text() == "mine"

    _media(items[2]).unlink()  # an image file lost from the media folder
    created = services.export_create(user=None, snapshot=snapshot, fmt="trl", rule="merged", eval_fraction=0,
                                     out_dir=tmp_path / "broken", enqueue=False)
    failed = services.export_execute(export_id=created.pk)
    assert failed.state == Export.State.FAILED
    assert failed.error.startswith("FileNotFoundError") and items[2].image_shas[0] in failed.error
    assert failed.manifest is None
    assert not (tmp_path / "broken").exists() and not list(tmp_path.glob(".broken*"))


def test_a_finished_export_is_left_alone_when_run_again(snapshot, tmp_path):
    done = export(snapshot, tmp_path / "once", "jsonl")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "once").iterdir()}
    again = services.export_execute(export_id=done.pk)
    assert (again.state, again.manifest) == (Export.State.DONE, done.manifest)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "once").iterdir()} == before


def test_default_out_dir_is_under_the_export_root(snapshot, settings):
    created = services.export_create(user=None, snapshot=snapshot, fmt="verl", rule="merged", enqueue=False)
    assert Path(created.out_dir).parent == Path(settings.LOOKFIRST_EXPORT_ROOT)
    assert Path(created.out_dir).name.startswith(f"{created.pk}-")
    assert services.export_execute(export_id=created.pk).state == Export.State.DONE
    assert (Path(created.out_dir) / "manifest.json").exists()


@pytest.mark.parametrize("rule", list(RULES))
def test_the_streamed_export_writes_exactly_the_rules_plan(snapshot, seed, tmp_path, rule):
    """The export streams rows in SQL order; the pure `plan` says what every split must hold, in order."""
    rows = [Row(r.item_id, r.bucket, r.pass_rate, r.excluded, is_text_only(r.tags, r.metadata))
            for r in SnapshotItem.objects.filter(snapshot=snapshot)]
    expected = plan(rule, rows, seed=seed, fraction=0.4)
    done = export(snapshot, tmp_path / rule, "jsonl", rule=rule, seed=seed, fraction=0.4)
    assert done.manifest["stages"] == list(RULES[rule])
    for split, entries in expected.splits.items():
        written = [json.loads(line) for line in (tmp_path / rule / f"{split}.jsonl").read_text().splitlines()]
        assert [(row["item_id"], row["stage"]) for row in written] == entries
        assert [row["index"] for row in written] == list(range(len(entries)))
