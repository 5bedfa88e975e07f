"""The run's image caches: each distinct file read once, each distinct content decoded once, nothing less strict."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image as PILImage

from lookfirst.ingest import run_images, services
from lookfirst.ingest.models import IngestError
from lookfirst.ingest.readers import ImageRef
from lookfirst.pools.models import Image, Item, image_relative_path
from tests.ingest.test_ingest_service import _mixed_file

pytestmark = pytest.mark.django_db


def png(color=(255, 0, 0), size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def ask(n: int, image: str, **extra) -> dict:
    return {"problem": f"<image>Question {n}?", "answer": str(n), "images": [image], **extra}


@pytest.fixture
def decodes(monkeypatch):
    """sha256 of every image decoded, in order."""
    seen: list[str] = []
    check = run_images.image_data_check

    def counting(data, **kwargs):
        seen.append(hashlib.sha256(data).hexdigest())
        return check(data, **kwargs)

    monkeypatch.setattr(run_images, "image_data_check", counting)
    return seen


@pytest.fixture
def reads(monkeypatch):
    """The path of every image file whose bytes the run read."""
    opened: list[str] = []
    real_read = run_images._read

    def counting(fd, size):
        opened.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_read(fd, size)

    monkeypatch.setattr(run_images, "_read", counting)
    return opened


def test_one_file_reached_by_a_symlink_a_hard_link_and_its_name_is_read_and_decoded_once(tmp_path, decodes, reads):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    os.link(tmp_path / "a.png", tmp_path / "hard.png")
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png"), ask(2, "link.png"), ask(3, "hard.png"),
                                                ask(4, "./a.png"), ask(5, "a.png")])

    run = services.ingest_path(user=None, pool_name="same", path=path)

    sha = hashlib.sha256(png()).hexdigest()
    assert (run.ingested, run.skipped, run.duplicates) == (5, 0, 0)
    assert decodes == [sha] and len(reads) == 1
    assert list(Item.objects.filter(pool__name="same").values_list("image_shas", flat=True)) == [[sha]] * 5
    assert list(Image.objects.values_list("sha256", flat=True)) == [sha]


def test_same_bytes_in_two_files_are_decoded_and_stored_once(tmp_path, decodes, reads):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(png())
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png"), ask(2, "b.png")])

    run = services.ingest_path(user=None, pool_name="copies", path=path)

    assert (run.ingested, len(reads), len(decodes), Image.objects.count()) == (2, 2, 1, 1)


def test_a_file_replaced_between_two_ingests_is_checked_again(tmp_path, settings):
    image = tmp_path / "a.png"
    image.write_bytes(png((255, 0, 0)))
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png")])
    first = services.ingest_path(user=None, pool_name="replaced", path=path)

    image.write_bytes(png((0, 0, 255)))
    second = services.ingest_path(user=None, pool_name="replaced", path=path)
    image.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    third = services.ingest_path(user=None, pool_name="replaced", path=path)

    blue = hashlib.sha256(png((0, 0, 255))).hexdigest()
    assert (first.ingested, second.ingested, second.duplicates) == (1, 1, 0)
    assert Item.objects.filter(pool__name="replaced").order_by("id").last().image_shas == [blue]
    assert (Path(settings.MEDIA_ROOT) / image_relative_path(blue, "png")).read_bytes() == png((0, 0, 255))
    assert (third.ingested, third.skipped) == (0, 1)
    error = IngestError.objects.get(run=third)
    assert (error.row, error.field) == (1, "images[0]") and "corrupt" in error.reason
    assert Image.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # the reading thread looks stored images up on its own connection
def test_an_image_already_stored_is_not_decoded_again_but_its_file_is_restored(tmp_path, settings, decodes):
    (tmp_path / "a.png").write_bytes(png())
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png")])
    services.ingest_path(user=None, pool_name="first", path=path)
    stored = Path(settings.MEDIA_ROOT) / image_relative_path(hashlib.sha256(png()).hexdigest(), "png")
    stored.unlink()

    run = services.ingest_path(user=None, pool_name="second", path=path)

    assert run.ingested == 1 and len(decodes) == 1
    assert stored.read_bytes() == png()


@pytest.mark.django_db(transaction=True)  # the reading thread looks stored images up on its own connection
def test_an_image_already_stored_still_meets_lowered_limits(tmp_path, settings, decodes):
    (tmp_path / "a.png").write_bytes(png(size=(40, 40)))
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png")])
    services.ingest_path(user=None, pool_name="first", path=path)
    settings.LOOKFIRST_MAX_IMAGE_PIXELS = 1000

    run = services.ingest_path(user=None, pool_name="second", path=path)

    assert (run.ingested, run.skipped, len(decodes)) == (0, 1, 1)
    assert IngestError.objects.get(run=run).reason == (
        "image is 40x40 = 1,600 pixels, over the 1,000-pixel limit (possible decompression bomb) (a.png)")
    settings.LOOKFIRST_MAX_IMAGE_BYTES = 10
    run = services.ingest_path(user=None, pool_name="third", path=path)
    assert IngestError.objects.get(run=run).reason.startswith("image is ")
    assert "-byte limit" in IngestError.objects.get(run=run).reason


def test_small_batches_and_forgetful_caches_report_the_same_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "BATCH_ROWS", 2)
    monkeypatch.setattr(run_images, "CACHE_SIZE", 1)
    path = _mixed_file(tmp_path)

    run = services.ingest_path(user=None, pool_name="small", path=path)

    assert (run.ingested, run.duplicates, run.skipped) == (7, 0, 11)
    assert list(IngestError.objects.filter(run=run).values_list("row", "field")) == [
        (2, "images[0]"), (4, "images[0]"), (6, "images[0]"), (8, "images[0]"), (10, "images[0]"),
        (12, "images[0]"), (14, "images[0]"), (15, "problem"), (16, "line"), (17, "answer"), (18, "line"),
    ]
    items = Item.objects.filter(pool__name="small").order_by("source_row")
    assert list(items.values_list("source_row", flat=True)) == [1, 3, 5, 7, 9, 11, 13]


def test_the_first_failing_image_of_a_row_is_its_error_whether_it_fails_on_reading_or_decoding(tmp_path, settings):
    settings.LOOKFIRST_MAX_IMAGE_BYTES = 1000
    (tmp_path / "ok.png").write_bytes(png())
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + bytes(2000))  # refused on reading, before any decoding
    rows = [{"problem": "Q1?", "answer": "1", "images": ["corrupt.png", "big.png"]},
            {"problem": "Q2?", "answer": "1", "images": ["ok.png", "big.png"]},
            {"problem": "Q3?", "answer": "1", "images": ["ok.png", "corrupt.png"]},
            {"problem": "Q4?", "answer": "1", "images": ["big.png", "corrupt.png"]}]
    path = write_rows(tmp_path / "rows.jsonl", rows)

    run = services.ingest_path(user=None, pool_name="first-fail", path=path)

    errors = list(IngestError.objects.filter(run=run).values_list("row", "field", "reason"))
    assert [(row, field) for row, field, _ in errors] == [
        (1, "images[0]"), (2, "images[1]"), (3, "images[1]"), (4, "images[0]")]
    limit = "image is 2,004 bytes, over the 1,000-byte limit"
    assert [reason for _, _, reason in errors] == [
        errors[0][2], f"{limit} (big.png)", errors[2][2], f"{limit} (big.png)"]
    assert errors[0][2].startswith("corrupt or truncated image") and errors[0][2].endswith("(corrupt.png)")
    assert errors[2][2] == errors[0][2]
    assert run.ingested == 0


def test_key_words_and_questions_are_stored_exactly(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    words = ['say "hi"', "back\\slash", "a,b", "{braces}", "", "NULL", "tab\there", "é ü 漢"]
    question = '<image>Which "one"\\ is é?\n'
    path = write_rows(tmp_path / "rows.jsonl", [{"problem": question, "answer": "A", "images": ["a.png"],
                                                 "key_words": words}])

    services.ingest_path(user=None, pool_name="exact", path=path)

    item = Item.objects.get(pool__name="exact")
    assert (item.key_words, item.question) == (words, question)
    assert item.content_key == hashlib.sha256(json.dumps([item.image_shas, question]).encode()).hexdigest()


def test_an_error_while_reading_stops_the_run_and_commits_nothing_after_it(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(png())
    path = write_rows(tmp_path / "rows.jsonl", [ask(n, "a.png") for n in range(1, 8)])
    monkeypatch.setattr(services, "BATCH_ROWS", 2)
    admit = run_images.ImageReader.admit
    calls = []

    def failing(self, ref, pending):
        calls.append(ref)
        if len(calls) == 5:
            raise RuntimeError("disk gone")
        return admit(self, ref, pending)

    monkeypatch.setattr(run_images.ImageReader, "admit", failing)

    with pytest.raises(RuntimeError, match="disk gone"):
        services.ingest_path(user=None, pool_name="stops", path=path)
    assert Item.objects.filter(pool__name="stops").count() <= 4


def test_a_failed_image_write_rolls_its_batch_back(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(png())
    path = write_rows(tmp_path / "rows.jsonl", [ask(1, "a.png")])

    def failing(files):
        raise OSError("no space left on device")

    monkeypatch.setattr(run_images, "_store_files", failing)

    with pytest.raises(OSError, match="no space"):
        services.ingest_path(user=None, pool_name="full", path=path)
    assert (Item.objects.count(), Image.objects.count()) == (0, 0)


def test_a_stored_file_of_the_right_length_is_kept_and_one_of_another_length_replaced(tmp_path):
    kept, torn = tmp_path / "images" / "ab" / "kept.png", tmp_path / "images" / "cd" / "torn.png"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"K" * 10)
    inode = kept.stat().st_ino
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"half")  # what a writer killed midway leaves

    run_images._store_files([(str(kept), b"k" * 10), (str(torn), b"whole file"),
                             (str(tmp_path / "images" / "ef" / "new.png"), b"new")])

    assert (kept.read_bytes(), kept.stat().st_ino) == (b"K" * 10, inode)
    assert torn.read_bytes() == b"whole file"
    assert (tmp_path / "images" / "ef" / "new.png").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["kept.png", "new.png", "torn.png"]


def test_a_write_that_fails_midway_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "images" / "ab" / "x.png"

    def failing(fd, data):
        os.write(fd, data[:3])
        raise OSError("no space left on device")

    monkeypatch.setattr(run_images, "_write_all", failing)

    with pytest.raises(OSError, match="no space"):
        run_images._store_files([(str(target), b"0123456789")])
    assert list(target.parent.iterdir()) == []


def test_stored_files_move_between_the_two_media_layouts(tmp_path, settings):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("lookfirst.pools.migrations.0005_media_one_level")
    settings.MEDIA_ROOT = tmp_path
    shas = [hashlib.sha256(bytes([n])).hexdigest() for n in range(3)]
    for sha in shas:
        Image.objects.create(sha256=sha, width=1, height=1, format="PNG", size_bytes=3)
    old = [tmp_path / "images" / sha[:2] / sha[2:4] / f"{sha}.png" for sha in shas]
    for path in old[:2]:  # the third file is missing
        path.parent.mkdir(parents=True)
        path.write_bytes(path.name.encode())
    (old[1].parent / "unknown.bin").write_bytes(b"?")  # a file no Image names keeps its folder

    migration._move(apps, forward=True)

    new = [tmp_path / image_relative_path(sha, "PNG") for sha in shas]
    assert [p.exists() for p in old] == [False, False, False]
    assert [p.read_bytes() if p.exists() else None for p in new] == [new[0].name.encode(), new[1].name.encode(), None]
    assert (old[0].parent.exists(), old[1].parent.exists()) == (False, True)

    migration._move(apps, forward=False)

    assert [p.read_bytes() if p.exists() else None for p in old] == [old[0].name.encode(), old[1].name.encode(), None]
    assert [p.exists() for p in new] == [False, False, False]


def test_a_fifo_or_a_folder_named_as_an_image_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dir.png").mkdir()
    reader = run_images.ImageReader(max_bytes=1000)
    pending: dict[str, bytes] = {}

    outcomes = [reader.admit(ImageRef(data=None, path=tmp_path / name, name=name), pending)
                for name in ("pipe.png", "dir.png", "gone.png")]

    assert [str(o) for o in outcomes] == [f"image is not a regular file: {tmp_path / 'pipe.png'}",
                                          f"image is not a regular file: {tmp_path / 'dir.png'}",
                                          f"image file not found: {tmp_path / 'gone.png'}"]
    assert pending == {} and reader.by_identity == {}
