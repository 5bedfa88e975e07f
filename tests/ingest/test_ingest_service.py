from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from lookfirst.ingest import services
from lookfirst.ingest.models import IngestError, IngestRun
from lookfirst.pools.models import Image, Item, Pool
from tests.ingest import format_samples

pytestmark = pytest.mark.django_db

WRITERS = {
    "easyr1": format_samples.write_easyr1_sample,
    "verl": format_samples.write_verl_sample,
    "trl": format_samples.write_trl_sample,
    "llava": format_samples.write_llava_sample,
    "llamafactory": format_samples.write_llamafactory_sample,
    "hf": format_samples.write_hf_sample,
    "folder": format_samples.write_folder_sample,
    "folder-zip": format_samples.write_folder_zip_sample,
}


def png(color=(255, 0, 0), size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_each_format_is_detected_and_ingested_with_its_images(fmt, tmp_path, settings):
    path = WRITERS[fmt](tmp_path / fmt)

    run = services.ingest_path(user=None, pool_name=f"p-{fmt}", path=path)

    assert (run.state, run.format, run.skipped, run.duplicates) == ("done", fmt.removesuffix("-zip"), 0, 0)
    items = list(Item.objects.filter(pool__name=f"p-{fmt}").order_by("source_row"))
    assert run.ingested == len(items) == 3
    assert [i.source_row for i in items] == [1, 2, 3]
    for item in items:
        assert item.question.count("<image>") == len(item.image_shas) >= 1
        for image in item.images():
            stored = Path(settings.MEDIA_ROOT) / image.relative_path
            assert stored.exists() and stored.stat().st_size == image.size_bytes
            with PILImage.open(stored) as decoded:
                assert decoded.size == (image.width, image.height)


def test_same_file_twice_adds_nothing_and_counts_duplicates(tmp_path):
    path = format_samples.write_easyr1_sample(tmp_path)
    first = services.ingest_path(user=None, pool_name="twice", path=path)
    images_before = Image.objects.count()

    second = services.ingest_path(user=None, pool_name="twice", path=path)

    assert (first.ingested, first.duplicates) == (3, 0)
    assert (second.state, second.ingested, second.duplicates, second.skipped) == ("done", 0, 3, 0)
    assert Item.objects.filter(pool__name="twice").count() == 3
    assert Image.objects.count() == images_before


def test_duplicate_rows_within_one_file_are_counted_not_inserted(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    row = {"problem": "<image>What colour?", "answer": "red", "images": ["a.png"]}
    lines = [row, row, {**row, "problem": "<image>Which colour?"}]
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")

    run = services.ingest_path(user=None, pool_name="dups", path=path)

    assert (run.ingested, run.duplicates, run.skipped) == (2, 1, 0)
    assert list(Item.objects.filter(pool__name="dups").order_by("source_row").values_list("source_row", flat=True)) == [1, 3]


def _mixed_file(tmp_path: Path) -> Path:
    """An EasyR1 jsonl where rows 2, 4, 6, ... are each broken in one way; odd rows are fine."""
    data = tmp_path / "data"
    data.mkdir()
    for name, color in [("ok1.png", (255, 0, 0)), ("ok2.png", (0, 255, 0)), ("ok3.png", (0, 0, 255)),
                        ("ok4.png", (9, 9, 9)), ("ok5.png", (90, 9, 9)), ("ok6.png", (9, 90, 9)),
                        ("ok7.png", (9, 9, 90))]:
        (data / name).write_bytes(png(color))
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (data / "truncated.png").write_bytes(png((1, 2, 3), (64, 64))[:-40])
    bomb = io.BytesIO()
    PILImage.new("1", (9000, 9000)).save(bomb, format="PNG")  # 81 Mpx, a few KB on disk
    (data / "bomb.png").write_bytes(bomb.getvalue())
    outside = tmp_path / "outside.png"
    outside.write_bytes(png())
    (data / "link.png").symlink_to(outside)
    good = lambda n: json.dumps({"problem": f"<image>Good question {n}?", "answer": str(n), "images": [f"ok{n}.png"],
                                 "source_note": f"kept {n}"})
    lines = [
        good(1),
        json.dumps({"problem": "<image>Corrupt?", "answer": "1", "images": ["corrupt.png"]}),
        good(2),
        json.dumps({"problem": "<image>Truncated?", "answer": "1", "images": ["truncated.png"]}),
        good(3),
        json.dumps({"problem": "<image>Bomb?", "answer": "1", "images": ["bomb.png"]}),
        good(4),
        json.dumps({"problem": "<image>Escape?", "answer": "1", "images": ["../outside.png"]}),
        good(5),
        json.dumps({"problem": "<image>Absolute?", "answer": "1", "images": [str(outside)]}),
        good(6),
        json.dumps({"problem": "<image>Symlink?", "answer": "1", "images": ["link.png"]}),
        good(7),
        json.dumps({"problem": "<image>Missing?", "answer": "1", "images": ["nope.png"]}),
        json.dumps({"problem": "", "answer": "1", "images": ["ok1.png"]}),
        '{"problem": "<image>broken json", ',
        json.dumps({"problem": "<image>List answer?", "answer": [1, 2], "images": ["ok1.png"]}),
    ]
    path = data / "mixed.jsonl"
    with open(path, "wb") as out:
        for line in lines:
            out.write(line.encode() + b"\n")
        out.write(b'{"problem": "<image>caf\xe9?", "answer": "1", "images": ["ok1.png"]}\n')  # latin-1, not UTF-8
    return path


def test_cli_reports_every_bad_row_exactly_and_ingests_every_good_row(tmp_path, capsys):
    path = _mixed_file(tmp_path)

    call_command("ingest", "mixed", str(path), "--json")

    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("pool", "format", "ingested", "duplicates", "skipped")} == {
        "pool": "mixed", "format": "easyr1", "ingested": 7, "duplicates": 0, "skipped": 11}
    assert [(e["row"], e["field"]) for e in summary["errors"]] == [
        (2, "images[0]"), (4, "images[0]"), (6, "images[0]"), (8, "images[0]"), (10, "images[0]"),
        (12, "images[0]"), (14, "images[0]"), (15, "problem"), (16, "line"), (17, "answer"), (18, "line"),
    ]
    reasons = {e["row"]: e["reason"] for e in summary["errors"]}
    assert "corrupt" in reasons[2] and "truncated" in reasons[4].lower() or "corrupt" in reasons[4]
    assert "decompression bomb" in reasons[6]
    assert "escapes" in reasons[8] and "absolute" in reasons[10] and "escapes" in reasons[12]
    assert "not found" in reasons[14] or "missing" in reasons[14]
    assert "UTF-8" in reasons[18]
    items = Item.objects.filter(pool__name="mixed").order_by("source_row")
    assert [i.source_row for i in items] == [1, 3, 5, 7, 9, 11, 13]
    assert items[0].metadata == {"source_note": "kept 1"}  # unknown column kept


def test_unknown_format_fails_clearly_and_ingests_nothing(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")

    with pytest.raises(CommandError) as excinfo:
        call_command("ingest", "nothing", str(path), "--json")

    message = str(excinfo.value)
    for name in ("easyr1", "verl", "trl", "llava", "llamafactory", "hf", "folder"):
        assert name in message
    assert Item.objects.count() == 0
    assert IngestRun.objects.get().state == "failed"


def test_unknown_format_name_is_refused_before_anything_is_recorded(tmp_path):
    path = format_samples.write_easyr1_sample(tmp_path)
    pool = Pool.objects.create(name="x")
    with pytest.raises(ValueError, match="known formats"):
        services.ingest_run_create(user=None, pool=pool, source=path, fmt="csvish")
    assert IngestRun.objects.count() == 0


def test_rerunning_a_run_restarts_it_without_doubling(tmp_path):
    path = _mixed_file(tmp_path)
    pool = Pool.objects.create(name="again")
    run = services.ingest_run_create(user=None, pool=pool, source=path)
    services.ingest_run_execute(run_id=run.pk)
    IngestRun.objects.filter(pk=run.pk).update(state="running")  # as if the worker died before finishing

    again = services.ingest_run_execute(run_id=run.pk)

    assert (again.ingested, again.duplicates, again.skipped) == (7, 0, 11)
    assert Item.objects.filter(pool=pool).count() == 7
    assert IngestError.objects.filter(run=run).count() == 11


def test_two_ingests_inside_one_transaction_do_not_leak_rows(tmp_path):
    from django.db import transaction

    with transaction.atomic():
        a = services.ingest_path(user=None, pool_name="first", path=format_samples.write_easyr1_sample(tmp_path / "a"))
        b = services.ingest_path(user=None, pool_name="second", path=format_samples.write_llava_sample(tmp_path / "b"))
    assert (a.ingested, b.ingested) == (3, 3)
    assert Item.objects.filter(pool__name="second").count() == 3


def test_a_batch_that_meets_the_pools_rows_falls_back_and_the_rest_of_the_run_follows(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(png())
    ask = lambda n: {"problem": f"<image>Question {n}?", "answer": str(n), "images": ["a.png"]}
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps(ask(n)) + "\n" for n in (1, 2)))
    second = tmp_path / "second.jsonl"
    # batches of two: [3, 1] meets row 1 in the pool; [4, 4] repeats itself; [2, 5]
    second.write_text("".join(json.dumps(ask(n)) + "\n" for n in (3, 1, 4, 4, 2, 5)))
    monkeypatch.setattr(services, "BATCH_ROWS", 2)
    staged = []
    real_staged = services._insert_items_staged
    monkeypatch.setattr(services, "_insert_items_staged",
                        lambda cursor, run, items: staged.append(len(items)) or real_staged(cursor, run, items))

    a = services.ingest_path(user=None, pool_name="overlap", path=first)
    assert staged == []  # a first ingest goes direct
    b = services.ingest_path(user=None, pool_name="overlap", path=second)

    assert (a.ingested, a.duplicates) == (2, 0)
    assert (b.state, b.rows_seen, b.ingested, b.duplicates, b.skipped) == ("done", 6, 3, 3, 0)
    assert staged == [2, 2, 2]  # the first batch fell back, and the run stayed on the staged way
    items = Item.objects.filter(pool__name="overlap").order_by("id")
    assert [(i.question, i.source_row, i.ingest_run_id) for i in items] == [
        ("<image>Question 1?", 1, a.pk), ("<image>Question 2?", 2, a.pk), ("<image>Question 3?", 1, b.pk),
        ("<image>Question 4?", 3, b.pk), ("<image>Question 5?", 6, b.pk)]


def test_deleting_an_ingest_run_keeps_its_items_and_clears_their_run(tmp_path):
    run = services.ingest_path(user=None, pool_name="orphans", path=format_samples.write_easyr1_sample(tmp_path))

    IngestRun.objects.filter(pk=run.pk).delete()

    assert list(Item.objects.filter(pool__name="orphans").values_list("ingest_run_id", flat=True)) == [None] * 3


def test_an_ingest_inside_a_callers_transaction_leaves_its_commit_setting_alone(tmp_path):
    from django.db import connection, transaction

    with transaction.atomic():
        run = services.ingest_path(user=None, pool_name="inside", path=format_samples.write_easyr1_sample(tmp_path))
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)
    assert run.ingested == 3


@pytest.mark.django_db(transaction=True)
def test_an_ingest_in_its_own_transactions_commits_every_batch(tmp_path, monkeypatch):
    from django.db import connection

    monkeypatch.setattr(services, "BATCH_ROWS", 1)
    statements = []
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        run = services.ingest_path(user=None, pool_name="own", path=format_samples.write_easyr1_sample(tmp_path))

    assert statements.count("SET LOCAL synchronous_commit TO off") == 3  # one per batch, none for the run's end
    assert (run.state, run.rows_seen, run.ingested) == ("done", 3, 3)
    assert IngestRun.objects.get(pk=run.pk).ingested == 3
    assert Item.objects.filter(pool__name="own").count() == 3


def test_text_postgresql_cannot_store_is_a_row_error_and_the_rest_of_the_batch_is_ingested(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    ask = lambda question, **extra: {"problem": f"<image>{question}", "answer": "1", "images": ["a.png"], **extra}
    lines = [
        json.dumps(ask("fine?")),
        json.dumps(ask("nul\u0000here?")),
        json.dumps(ask("long key word?", key_words=["ok", "x" * 201])),
        json.dumps(ask("nul answer?", answer="a\u0000b")),
        '{"problem": "<image>lone \\ud800 surrogate?", "answer": "1", "images": ["a.png"]}',
        json.dumps(ask("nul in an extra column?", notes={"by": ["ann", "b\u0000b"]})),
        json.dumps(ask("fine too?", key_words=["y" * 200])),
        json.dumps(ask(" ".join(f"w{n:07d}" for n in range(25_000)))),  # 225,006 characters with "<image>"
        json.dumps(ask("long but fine " + "z" * (200_000 - 21))),
    ]
    path = tmp_path / "text.jsonl"
    path.write_text("\n".join(lines) + "\n")

    run = services.ingest_path(user=None, pool_name="text", path=path)

    errors = [(e.row, e.field, e.reason) for e in IngestError.objects.filter(run=run).order_by("row")]
    nul = "text contains a NUL character, which PostgreSQL cannot store"
    assert errors == [
        (2, "question", nul),
        (3, "key_words[1]", "key word is 201 characters, over the 200-character limit"),
        (4, "answer", nul),
        (5, "question", "text contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid UTF-8"),
        (6, "metadata.notes.by[1]", nul),
        (8, "question", "question is 225,006 characters, over the 200,000-character limit"),
    ]
    assert (run.state, run.ingested, run.skipped) == ("done", 3, 6)
    assert list(Item.objects.filter(pool__name="text").order_by("source_row").values_list("source_row", flat=True)) == [
        1, 7, 9]
    assert len(Item.objects.get(pool__name="text", source_row=9).question) == 200_000


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_values_nested_too_deep_are_row_errors_in_jsonl_and_json_arrays(tmp_path, suffix):
    (tmp_path / "a.png").write_bytes(png())
    ask = lambda n, extra="": ('{"problem": "<image>Question %d?", "answer": "1", "images": ["a.png"]%s}' % (n, extra))
    rows = [ask(1), ask(2, ', "extra": ' + "[" * 5_000 + "]" * 5_000),
            ask(3, ', "extra": {"a": ' + "[" * 65 + "]" * 65 + "}"), ask(4, ', "extra": ' + "[" * 64 + "]" * 64)]
    path = tmp_path / f"deep{suffix}"
    path.write_text("\n".join(rows) + "\n" if suffix == ".jsonl" else "[" + ",".join(rows) + "]")

    run = services.ingest_path(user=None, pool_name=f"deep{suffix[1:]}", path=path)

    deep = "value nests lists or objects more than 64 levels deep"
    unreadable = "JSON nests lists or objects too deeply to read (the limit is 64 levels)"
    assert [(e.row, e.field, e.reason) for e in IngestError.objects.filter(run=run).order_by("row")] == [
        (2, "line", unreadable) if suffix == ".jsonl" else (2, "extra", deep), (3, "extra", deep)]
    assert (run.state, run.ingested, run.skipped) == ("done", 2, 2)
    kept = []
    for _ in range(63):
        kept = [kept]
    assert Item.objects.get(ingest_run=run, source_row=4).metadata["extra"] == kept  # 64 levels: at the limit


def test_reader_doctests():
    import doctest

    from lookfirst.ingest.readers import common

    result = doctest.testmod(common)
    assert (result.attempted >= 5, result.failed) == (True, 0)
