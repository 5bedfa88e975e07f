import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lookfirst.ingest.readers import (
    FORMATS,
    ImageRef,
    RowError,
    SourceRow,
    UnknownFormatError,
    UnreadableSourceError,
    detect_format,
    read_source,
    resolve_image_path,
)
from lookfirst.ingest.readers import common
from lookfirst.ingest.readers.common import FileImages, RowProblem
from tests.ingest.format_samples import (
    EXPECTED,
    WRITERS,
    sample_png,
    write_easyr1_sample,
    write_folder_sample,
    write_folder_zip_sample,
    write_hf_sample,
    write_llamafactory_sample,
    write_llava_sample,
    write_trl_sample,
    write_verl_sample,
)

KNOWN = "known formats: easyr1, verl, trl, llava, llamafactory, hf, folder"


def read_all(path, fmt="auto", images_dir=None):
    return list(read_source(path, fmt, images_dir))


def file_ref(path: Path, name: str) -> ImageRef:
    return ImageRef(data=None, path=path.resolve(), name=name)


def bytes_ref(name: str) -> ImageRef:
    return ImageRef(data=sample_png(name.removesuffix(".png")), path=None, name=name)


def row(n, question, answer, images, key_words=(), description=None, **metadata) -> SourceRow:
    return SourceRow(n, question, answer, list(images), list(key_words), description, metadata)


def write_jsonl(path: Path, rows) -> Path:
    """Rows may be dicts (dumped) or raw bytes (written as they are, for broken lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))
    return path


def png_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sample_png(path.stem))
    return path


# --- every format: exact rows, and auto-detection -----------------------------------------------------

def test_easyr1_jsonl(tmp_path):
    path = write_easyr1_sample(tmp_path)
    images = path.parent / "images"
    assert read_all(path, "easyr1") == [
        row(1, "<image>What color is the square?", "red", [file_ref(images / "e1a.png", "images/e1a.png")],
            ["square", "red"], "a red square"),
        row(2, "<image>How many circles are there?", "2", [file_ref(images / "e2a.png", "images/e2a.png")],
            difficulty="easy"),
        row(3, "<image><image>Which shape is larger?", "the circle",
            [file_ref(images / "e3a.png", "images/e3a.png"), file_ref(images / "e3b.png", "images/e3b.png")]),
    ]


def test_easyr1_parquet_with_bytes_structs_and_single_string(tmp_path):
    png_at(tmp_path / "imgs" / "one.png")
    table = pa.Table.from_pylist([
        {"problem": "Color?", "answer": "red", "images": [{"bytes": sample_png("p1"), "path": "p1.png"}]},
        {"problem": "Count?", "answer": "3", "images": [{"bytes": None, "path": "one.png"}]},
    ])
    pq.write_table(table, tmp_path / "train.parquet")
    (tmp_path / "single.jsonl").write_text(json.dumps({"problem": "Shape?", "answer": "disc", "images": "one.png"}))

    assert read_all(tmp_path / "train.parquet", "easyr1", images_dir=tmp_path / "imgs") == [
        row(1, "<image>Color?", "red", [bytes_ref("p1.png")]),
        row(2, "<image>Count?", "3", [file_ref(tmp_path / "imgs" / "one.png", "one.png")]),
    ]
    assert read_all(tmp_path / "single.jsonl", images_dir=tmp_path / "imgs") == [
        row(1, "<image>Shape?", "disc", [file_ref(tmp_path / "imgs" / "one.png", "one.png")]),
    ]


def test_easyr1_folder_of_files_numbers_rows_across_files(tmp_path):
    png_at(tmp_path / "a.png")
    write_jsonl(tmp_path / "part1.jsonl", [{"problem": "Q1", "answer": "1", "images": ["a.png"]},
                                           {"problem": "Q2", "answer": "2", "images": ["a.png"]}])
    write_jsonl(tmp_path / "part2.jsonl", [{"problem": "Q3", "answer": "3", "images": ["a.png"]}])
    rows = read_all(tmp_path)
    assert [(r.row, r.question) for r in rows] == [(1, "<image>Q1"), (2, "<image>Q2"), (3, "<image>Q3")]


def test_verl_parquet(tmp_path):
    path = write_verl_sample(tmp_path)
    rows = read_all(path, "verl")
    assert rows[0] == row(
        1, "<image>What color is the square?", "red", [bytes_ref("v0a.png")],
        data_source="shapes", ability="visual", reward_model={"style": "rule"},
        extra_info={"split": "train", "index": 0, "answer": "red", "question": "What color is the square?"},
    )
    assert [(r.row, r.question, r.answer, len(r.images)) for r in rows] == [
        (n + 1, q, a, k) for n, (q, a, k) in enumerate(EXPECTED["verl"])
    ]


def test_verl_system_message_and_question_from_extra_info(tmp_path):
    png_at(tmp_path / "a.png")
    path = write_jsonl(tmp_path / "verl.jsonl", [
        {"prompt": [{"role": "system", "content": "Think first."}, {"role": "user", "content": "<image>Q?"}],
         "images": ["a.png"], "reward_model": {"style": "rule", "ground_truth": 7}, "data_source": "x"},
        {"prompt": None, "images": ["a.png"], "data_source": "x",
         "extra_info": {"question": "From extra?", "answer": "yes"}},
    ])
    assert read_all(path) == [
        row(1, "<image>Q?", "7", [file_ref(tmp_path / "a.png", "a.png")], data_source="x",
            reward_model={"style": "rule"}, extra_messages=[{"role": "system", "content": "Think first."}]),
        row(2, "<image>From extra?", "yes", [file_ref(tmp_path / "a.png", "a.png")], data_source="x",
            extra_info={"question": "From extra?", "answer": "yes"}),
    ]


def test_trl_parquet_with_typed_blocks(tmp_path):
    path = write_trl_sample(tmp_path)
    assert read_all(path, "trl") == [
        row(n + 1, q, a, [bytes_ref(f"t{n}a.png")]) for n, (q, a, _) in enumerate(EXPECTED["trl"])
    ]


def test_trl_string_content_images_list_and_other_answer_columns(tmp_path):
    png_at(tmp_path / "a.png")
    png_at(tmp_path / "b.png")
    path = write_jsonl(tmp_path / "trl.jsonl", [
        {"prompt": [{"role": "user", "content": "Compare them."}], "images": ["a.png", "b.png"], "answer": "same"},
        {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Left "}, {"type": "image"},
                                                 {"type": "text", "text": " right"}, {"type": "image"}]}],
         "images": ["a.png", "b.png"], "ground_truth": 1.0, "solution": None, "topic": "shapes"},
    ])
    refs = [file_ref(tmp_path / "a.png", "a.png"), file_ref(tmp_path / "b.png", "b.png")]
    assert read_all(path) == [
        row(1, "<image><image>Compare them.", "same", refs),
        row(2, "Left <image> right<image>", "1", refs, solution=None, topic="shapes"),
    ]


def test_llava_json_array(tmp_path):
    path = write_llava_sample(tmp_path)
    images = path.parent / "images"
    assert read_all(path, "llava") == [
        row(n + 1, q, a, [file_ref(images / f"l{n}a.png", f"images/l{n}a.png")], id=f"l{n}")
        for n, (q, a, _) in enumerate(EXPECTED["llava"])
    ]


def test_llava_jsonl_with_more_turns_and_image_list(tmp_path):
    png_at(tmp_path / "a.png")
    png_at(tmp_path / "b.png")
    turns = [{"from": "human", "value": "<image>\n<image>\nSame?"}, {"from": "gpt", "value": "no"},
             {"from": "human", "value": "Why?"}, {"from": "gpt", "value": "colors"}]
    path = write_jsonl(tmp_path / "vlm_r1.jsonl", [{"id": 7, "image": ["a.png", "b.png"], "conversations": turns}])
    assert read_all(path) == [
        row(1, "<image>\n<image>\nSame?", "no",
            [file_ref(tmp_path / "a.png", "a.png"), file_ref(tmp_path / "b.png", "b.png")],
            id=7, extra_messages=turns[2:]),
    ]


def test_llamafactory_json_array(tmp_path):
    path = write_llamafactory_sample(tmp_path)
    images = path.parent / "images"
    assert read_all(path, "llamafactory") == [
        row(n + 1, q, a, [file_ref(images / f"f{n}a.png", f"images/f{n}a.png")])
        for n, (q, a, _) in enumerate(EXPECTED["llamafactory"])
    ]


def test_hf_parquet_shards(tmp_path):
    path = write_hf_sample(tmp_path)
    assert read_all(path, "hf") == [
        row(n + 1, q, a, [bytes_ref(f"h{n}a.png")]) for n, (q, a, _) in enumerate(EXPECTED["hf"])
    ]


def test_hf_single_shard_other_column_names_and_metadata(tmp_path):
    table = pa.Table.from_pylist([
        {"images": [{"bytes": sample_png("x"), "path": None}], "query": "Label?", "label": 3,
         "thumb": b"\x00\x01\x02", "when": pa.scalar(0, pa.timestamp("s")).as_py(), "score": float("nan")},
    ])
    pq.write_table(table, tmp_path / "shard.parquet")
    [source_row] = read_all(tmp_path / "shard.parquet")
    assert source_row == row(
        1, "<image>Label?", "3", [ImageRef(sample_png("x"), None, "images[0]")],
        thumb="<3 bytes>", when="1970-01-01T00:00:00", score=None,
    )
    json.dumps(source_row.metadata)


def test_folder_directory_and_zip(tmp_path):
    folder = write_folder_sample(tmp_path)
    assert read_all(folder, "folder") == [
        row(n + 1, q, a, [file_ref(folder / f"d{n}a.png", f"d{n}a.png")])
        for n, (q, a, _) in enumerate(EXPECTED["folder"])
    ]
    archive = write_folder_zip_sample(tmp_path / "z")
    assert read_all(archive, "folder") == [
        row(n + 1, q, a, [bytes_ref(f"d{n}a.png")]) for n, (q, a, _) in enumerate(EXPECTED["folder"])
    ]


def test_folder_zip_with_metadata_in_a_subfolder_and_key_words(tmp_path):
    path = tmp_path / "pack.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pack/", "")
        archive.writestr("pack/metadata.jsonl", json.dumps(
            {"file_name": "img/a.png", "question": "Q?", "answer": "A", "key_words": ["k"], "description": "d"}) + "\n")
        archive.writestr("pack/img/a.png", sample_png("a"))
        archive.writestr("__MACOSX/pack/._metadata.jsonl", "junk")
    assert read_all(path) == [row(1, "<image>Q?", "A", [ImageRef(sample_png("a"), None, "img/a.png")], ["k"], "d")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_detect_format_of_every_sample(tmp_path, fmt):
    path = WRITERS[fmt](tmp_path)
    assert detect_format(path) == fmt
    rows = read_all(path)
    assert [(r.question, r.answer, len(r.images)) for r in rows] == EXPECTED[fmt]


def test_detect_folder_zip(tmp_path):
    assert detect_format(write_folder_zip_sample(tmp_path)) == "folder"


# --- bad rows: one exact RowError each, good rows still come through ------------------------------------

def test_bad_rows_in_jsonl(tmp_path):
    png_at(tmp_path / "images" / "ok.png")
    outside = png_at(tmp_path.parent / f"{tmp_path.name}-outside" / "secret.png")
    (tmp_path / "images" / "link.png").symlink_to(outside)
    good = {"problem": "<image>Good?", "answer": "yes", "images": ["images/ok.png"]}
    path = write_jsonl(tmp_path / "data.jsonl", [
        good,                                                                     # 1
        b'{"problem": "broken", ',                                                # 2
        b'{"problem": "caf\xe9?", "answer": "x", "images": []}',                  # 3
        {"problem": "   ", "answer": "x", "images": ["images/ok.png"]},           # 4
        {"answer": "x", "images": ["images/ok.png"]},                             # 5
        {"problem": "Q", "answer": ["a", "b"], "images": ["images/ok.png"]},      # 6
        {"problem": "Q", "answer": "a", "images": ["/etc/passwd"]},               # 7
        {"problem": "Q", "answer": "a", "images": ["../../etc/passwd"]},          # 8
        {"problem": "Q", "answer": "a", "images": ["images/ok.png", "images/nope.png"]},  # 9
        {"problem": "Q", "answer": "a", "images": ["images/ok.png", 5]},          # 10
        {"problem": "Q", "answer": "a", "images": ["images/link.png"]},           # 11
        b"",                                                                      # 12 (blank: skipped)
        good,                                                                     # 13
        {"problem": "<image><image>Q", "answer": "a", "images": ["images/ok.png"]},  # 14
        b"[1, 2]",                                                                # 15
        {"problem": 42, "answer": "a", "images": ["images/ok.png"]},              # 16
        {"problem": "Q", "answer": {"v": 1}, "images": ["images/ok.png"]},        # 17
        {"problem": "Q", "answer": "a", "images": [{"path": None, "bytes": None}]},  # 18
        {"problem": "Q", "answer": "a", "images": ["images/ok.png"], "key_words": 5},  # 19
        good,                                                                     # 20
    ])
    items = read_all(path, "easyr1")
    errors = [item for item in items if isinstance(item, RowError)]
    assert [(e.row, e.field) for e in errors] == [
        (2, "line"), (3, "line"), (4, "problem"), (5, "problem"), (6, "answer"), (7, "images[0]"),
        (8, "images[0]"), (9, "images[1]"), (10, "images[1]"), (11, "images[0]"), (14, "problem"), (15, "line"),
        (16, "problem"), (17, "answer"), (18, "images[0]"), (19, "key_words"),
    ]
    reasons = {e.row: e.reason for e in errors}
    assert reasons[2].startswith("malformed JSON: ")
    assert reasons[3] == "line is not valid UTF-8 (at byte 17)"
    assert reasons[4] == "question is empty"
    assert reasons[5] == "question is missing"
    assert reasons[6] == "wrong type: expected text or number, got list"
    assert reasons[7] == "image path is absolute: /etc/passwd"
    assert reasons[8] == "image path escapes the source folder: ../../etc/passwd"
    assert reasons[9] == "image file not found: images/nope.png"
    assert reasons[10] == "wrong type: expected an image path or bytes, got number"
    assert reasons[11] == "image path escapes the source folder through a symlink: images/link.png"
    assert reasons[14] == "question has 2 <image> placeholder(s) but the row has 1 image(s)"
    assert reasons[15] == "wrong type: expected a JSON object, got list"
    assert reasons[16] == "wrong type: expected text, got number"
    assert reasons[17] == "wrong type: expected text or number, got object"
    assert reasons[18] == "image entry has neither bytes nor a path"
    assert reasons[19] == "wrong type: expected a list of text, got number"
    good_rows = [item for item in items if isinstance(item, SourceRow)]
    assert [(r.row, r.question, r.answer) for r in good_rows] == [(n, "<image>Good?", "yes") for n in (1, 13, 20)]
    assert len(items) == 19  # one item per non-blank line: never two for one row


def test_first_problem_of_a_row_wins(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "", "answer": [1], "images": ["/abs.png"]}])
    assert read_all(path, "easyr1") == [RowError(1, "problem", "question is empty")]


def test_bad_rows_in_parquet(tmp_path):
    table = pa.Table.from_pylist([
        {"image": {"bytes": sample_png("a"), "path": "a.png"}, "question": "Fine?", "answer": "yes"},
        {"image": {"bytes": sample_png("b"), "path": "b.png"}, "question": None, "answer": "x"},
        {"image": {"bytes": None, "path": None}, "question": "No image data?", "answer": "x"},
        {"image": {"bytes": None, "path": "../up.png"}, "question": "Escape?", "answer": "x"},
        {"image": {"bytes": sample_png("c"), "path": "c.png"}, "question": "Also fine?", "answer": None},
    ])
    pq.write_table(table, tmp_path / "data.parquet")
    assert read_all(tmp_path / "data.parquet", "hf") == [
        row(1, "<image>Fine?", "yes", [bytes_ref("a.png")]),
        RowError(2, "question", "question is missing"),
        RowError(3, "image", "image entry has neither bytes nor a path"),
        RowError(4, "image", "image path escapes the source folder: ../up.png"),
        row(5, "<image>Also fine?", None, [bytes_ref("c.png")]),
    ]


def test_bad_rows_in_chat_formats(tmp_path):
    png_at(tmp_path / "a.png")
    llava = write_jsonl(tmp_path / "llava.jsonl", [
        {"id": 1, "image": "a.png", "conversations": [{"from": "gpt", "value": "hi"}]},
        {"id": 2, "image": "a.png", "conversations": "What?"},
        {"id": 3, "image": "a.png", "conversations": [{"from": "human", "value": "<image>Q"},
                                                      {"from": "gpt", "value": ["x"]}]},
        {"id": 4, "image": "a.png", "conversations": [{"from": "human", "value": "<image>Q"},
                                                      {"from": "gpt", "value": "A"}]},
    ])
    assert read_all(llava, "llava") == [
        RowError(1, "conversations", "question is missing: no user message"),
        RowError(2, "conversations", "wrong type: expected a list of messages, got text"),
        RowError(3, "conversations[1].value[0]", "wrong type: expected a content block, got text"),
        row(4, "<image>Q", "A", [file_ref(tmp_path / "a.png", "a.png")], id=4),
    ]
    trl = write_jsonl(tmp_path / "trl.jsonl", [
        {"prompt": [{"role": "user", "content": [{"type": "video"}]}], "image": "a.png"},
        {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}], "image": "a.png"},
    ])
    assert read_all(trl, "trl") == [
        RowError(1, "prompt[0].content[0]", "unsupported content block type: video"),
        row(2, "<image>Q", None, [file_ref(tmp_path / "a.png", "a.png")]),
    ]
    verl = write_jsonl(tmp_path / "verl.jsonl", [
        {"prompt": [{"role": "user", "content": "Q"}], "images": ["a.png"], "reward_model": {"ground_truth": [1]}},
        {"prompt": [{"role": "user", "content": "Q"}], "images": ["a.png"], "reward_model": "3"},
        {"prompt": [{"role": "user", "content": "Q"}], "images": ["a.png"], "reward_model": {"ground_truth": "3"}},
    ])
    assert read_all(verl, "verl") == [
        RowError(1, "reward_model.ground_truth", "wrong type: expected text or number, got list"),
        RowError(2, "reward_model", "wrong type: expected an object with ground_truth, got text"),
        row(3, "<image>Q", "3", [file_ref(tmp_path / "a.png", "a.png")]),
    ]
    factory = write_jsonl(tmp_path / "lf.jsonl", [
        {"messages": [{"role": "user", "content": "<image>Q"}], "images": ["a.png"]},
        {"messages": [{"role": "user", "content": ""}], "images": ["a.png"]},
        {"messages": ["hi"], "images": ["a.png"]},
    ])
    assert read_all(factory, "llamafactory") == [
        row(1, "<image>Q", None, [file_ref(tmp_path / "a.png", "a.png")]),
        RowError(2, "messages", "question is empty"),
        RowError(3, "messages[0]", "wrong type: expected a message object, got text"),
    ]


def test_answers_become_text(tmp_path):
    rows = [{"problem": "Q", "answer": value, "images": []} for value in (True, 3, 2.5, 4.0, None, "x")]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert [r.answer for r in read_all(path, "easyr1")] == ["true", "3", "2.5", "4", None, "x"]


def test_csv_metadata_bad_rows(tmp_path):
    png_at(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_bytes(
        b"file_name,question,answer,key_words\n"
        b"a.png,Q1,A1,\"[\"\"k1\"\", \"\"k2\"\"]\"\n"
        b"a.png,,A2,\n"
        b"a.png,caf\xe9,A3,\n"
        b"../a.png,Q4,A4,\n"
        b"a.png,Q5,,solo\n"
    )
    ref = [file_ref(tmp_path / "a.png", "a.png")]
    assert read_all(tmp_path) == [
        row(1, "<image>Q1", "A1", ref, ["k1", "k2"]),
        RowError(2, "question", "question is missing"),
        RowError(3, "line", "line is not valid UTF-8"),
        RowError(4, "file_name", "image path escapes the source folder: ../a.png"),
        row(5, "<image>Q5", None, ref, ["solo"]),
    ]


def test_zip_member_escaping_is_never_read(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.jsonl", "\n".join(json.dumps(r) for r in [
            {"file_name": "ok.png", "question": "Fine?", "answer": "yes"},
            {"file_name": "../evil.png", "question": "Evil?", "answer": "no"},
            {"file_name": "/abs.png", "question": "Abs?", "answer": "no"},
            {"file_name": "sub/../../evil.png", "question": "Sneaky?", "answer": "no"},
            {"file_name": "missing.png", "question": "Gone?", "answer": "no"},
            {"file_name": "ok.png", "question": "Fine again?", "answer": "yes"},
        ]) + "\n")
        archive.writestr("ok.png", sample_png("ok"))
        archive.writestr("../evil.png", sample_png("evil"))
        archive.writestr("/abs.png", sample_png("abs"))
    assert {info.filename for info in zipfile.ZipFile(path).infolist()} >= {"../evil.png", "/abs.png"}
    ok = [ImageRef(sample_png("ok"), None, "ok.png")]
    assert read_all(path) == [
        row(1, "<image>Fine?", "yes", ok),
        RowError(2, "file_name", "image path escapes the source folder: ../evil.png"),
        RowError(3, "file_name", "image path is absolute: /abs.png"),
        RowError(4, "file_name", "image path escapes the source folder: sub/../../evil.png"),
        RowError(5, "file_name", "image file not found in the zip: missing.png"),
        row(6, "<image>Fine again?", "yes", ok),
    ]


def test_zip_metadata_member_outside_root_is_ignored(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../metadata.jsonl", json.dumps({"file_name": "a.png", "question": "Q"}))
        archive.writestr("a.png", sample_png("a"))
    with pytest.raises(UnreadableSourceError, match="the zip holds no metadata.jsonl"):
        read_source(path)


# --- image paths ---------------------------------------------------------------------------------------

def test_resolve_image_path(tmp_path):
    image = png_at(tmp_path / "sub" / "a.png")
    assert resolve_image_path(tmp_path, "sub/a.png") == image.resolve()
    (tmp_path / "inner.png").symlink_to(image)
    assert resolve_image_path(tmp_path, "inner.png") == image.resolve()
    outside = png_at(tmp_path.parent / f"{tmp_path.name}-out" / "b.png")
    (tmp_path / "out.png").symlink_to(outside)
    (tmp_path / "outdir").symlink_to(outside.parent, target_is_directory=True)
    cases = {
        "/etc/passwd": "image path is absolute: /etc/passwd",
        "C:\\x.png": "image path is absolute: C:\\x.png",
        "../a.png": "image path escapes the source folder: ../a.png",
        "sub/../../a.png": "image path escapes the source folder: sub/../../a.png",
        "out.png": "image path escapes the source folder through a symlink: out.png",
        "outdir/b.png": "image path escapes the source folder through a symlink: outdir/b.png",
        "sub/none.png": "image file not found: sub/none.png",
        "sub": "image path is not a file: sub",
        "": "image path is empty",
        "http://x/a.png": "image URLs are not supported: http://x/a.png",
        "a" * 300 + ".png": f"image path cannot be read: {'a' * 300}.png: File name too long",
    }
    for ref, message in cases.items():
        with pytest.raises(ValueError) as caught:
            resolve_image_path(tmp_path, ref)
        assert str(caught.value) == message



def test_file_images_refuse_exactly_what_resolve_image_path_refuses(tmp_path):
    image = png_at(tmp_path / "sub" / "a.png")
    (tmp_path / "inner.png").symlink_to(image)
    (tmp_path / "innerdir").symlink_to(image.parent, target_is_directory=True)
    outside = png_at(tmp_path.parent / f"{tmp_path.name}-out" / "b.png")
    (tmp_path / "out.png").symlink_to(outside)
    (tmp_path / "outdir").symlink_to(outside.parent, target_is_directory=True)
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    refs = ["sub/a.png", "./sub/a.png", "sub//a.png", "inner.png", "innerdir/a.png", "out.png", "outdir/b.png",
            "outdir/../sub/a.png", "/etc/passwd", "C:\\x.png", "c:x.png", "../a.png", "sub/../../a.png",
            "sub/none.png", "none/a.png", "sub", "sub/", "sub/.", "", "http://x/a.png", "a\x00.png", "loop.png",
            "a" * 300 + ".png", "\ud800.png"]
    images = FileImages(tmp_path)

    for ref in refs:
        try:
            expected = ImageRef(data=None, path=resolve_image_path(tmp_path, ref), name=ref)
        except ValueError as exc:
            expected = RowProblem("images[0]", str(exc))
        for _ in range(2):  # the second answer comes from the cache
            try:
                got = images(ref, "images[0]")
            except RowProblem as problem:
                got = problem
            if isinstance(expected, RowProblem):
                assert isinstance(got, RowProblem) and (got.field, got.reason) == (expected.field, expected.reason), ref
            else:
                assert got == expected, ref


def test_file_images_resolve_each_reference_once(tmp_path, monkeypatch):
    png_at(tmp_path / "a.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    images = FileImages(tmp_path)
    first = images("a.png", "images")
    calls = []
    monkeypatch.setattr(common, "resolve_image_path", lambda *args: calls.append(args))
    monkeypatch.setattr(FileImages, "_plain_file", lambda *args: calls.append(args))

    assert images("a.png", "images[1]") is first
    assert calls == []
    monkeypatch.undo()
    assert first.path == (tmp_path / "a.png").resolve()
    assert images("link.png", "images").path == first.path  # a symlink inside the folder reaches the same file


def test_a_symlink_loop_is_a_row_problem(tmp_path):
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    with pytest.raises(ValueError, match="image path cannot be read: loop.png: Symlink loop from"):
        resolve_image_path(tmp_path, "loop.png")

# --- whole-source problems -------------------------------------------------------------------------------

def test_unknown_format_name_lists_the_formats(tmp_path):
    path = write_easyr1_sample(tmp_path)
    with pytest.raises(UnknownFormatError) as caught:
        read_source(path, "sharegpt")
    assert str(caught.value) == f"unknown format 'sharegpt'; {KNOWN}"


def test_undetectable_sources(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(UnknownFormatError) as caught:
        detect_format(path)
    assert str(caught.value) == f"cannot detect the format of d.jsonl: columns bar, foo; {KNOWN}"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnknownFormatError, match=KNOWN):
        read_source(tmp_path / "notes.txt")
    broken = write_jsonl(tmp_path / "broken.jsonl", [b"{nope"])
    with pytest.raises(UnknownFormatError, match="no readable rows"):
        detect_format(broken)


def test_unreadable_sources(tmp_path):
    with pytest.raises(UnreadableSourceError, match="source not found"):
        read_source(tmp_path / "missing.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableSourceError, match="not a readable parquet file: bad.parquet"):
        read_source(tmp_path / "bad.parquet", "hf")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(UnreadableSourceError, match="not a readable zip file: bad.zip"):
        read_source(tmp_path / "bad.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(UnreadableSourceError, match="the zip is empty"):
        read_source(tmp_path / "empty.zip", "folder")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UnreadableSourceError, match="no data files"):
        read_source(tmp_path / "empty_dir", "easyr1")
    (tmp_path / "bad.json").write_text('[{"problem": "x"},')
    with pytest.raises(UnreadableSourceError, match="bad.json is not valid JSON"):
        read_source(tmp_path / "bad.json", "easyr1")


def test_read_source_checks_before_the_first_row(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(UnreadableSourceError):
        read_source(tmp_path / "bad.parquet", "hf")  # no iteration needed


# --- streaming ---------------------------------------------------------------------------------------------

def test_parquet_is_read_in_batches_with_exact_row_numbers(tmp_path, monkeypatch):
    rows = [{"image": {"bytes": sample_png("a"), "path": None}, "question": f"Q{i}", "answer": str(i)}
            for i in range(700)]
    rows[599]["question"] = ""
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=100)
    batch_sizes = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        batch_sizes.append(kwargs.get("batch_size"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    items = read_source(tmp_path / "big.parquet", "hf")
    first = next(items)
    assert (first.row, first.question) == (1, "<image>Q0")
    rest = list(items)
    assert rest[598] == RowError(600, "question", "question is empty")
    assert (rest[-1].row, rest[-1].answer) == (700, "699")
    assert batch_sizes == [256] * 7  # one call per row group of 100 rows


def test_jsonl_is_read_lazily(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "Q1", "answer": "1", "images": []}])
    items = read_source(path, "easyr1")
    with path.open("ab") as stream:  # appended after the call: a stream sees it, a preloaded list would not
        stream.write(json.dumps({"problem": "Q2", "answer": "2", "images": []}).encode() + b"\n")
    assert [r.question for r in items] == ["Q1", "Q2"]


def test_images_dir_must_exist(tmp_path):
    path = write_easyr1_sample(tmp_path)
    with pytest.raises(UnreadableSourceError, match="images folder not found"):
        read_source(path, "easyr1", images_dir=tmp_path / "nope")


def test_a_later_file_of_a_folder_that_is_unreadable_is_one_row_error(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"problem": "Q1", "answer": "1"}, {"problem": "Q2", "answer": "2"}]))
    (tmp_path / "b.json").write_text('[{"problem": "Q3"')
    (tmp_path / "c.jsonl").write_text(json.dumps({"problem": "Q4", "answer": "4"}) + "\n")
    assert read_all(tmp_path, "easyr1") == [
        row(1, "Q1", "1", []),
        row(2, "Q2", "2", []),
        RowError(3, "file", "b.json is not valid JSON after row 0: parse error: premature EOF"),
        row(4, "Q4", "4", []),
    ]


def test_data_files_linked_from_outside_the_folder_are_not_read(tmp_path):
    outside = write_jsonl(tmp_path / "outside.jsonl", [{"problem": "Q", "answer": "A"}])
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.jsonl").symlink_to(outside)
    with pytest.raises(UnreadableSourceError, match="no data files"):
        read_source(tmp_path / "src", "easyr1")


def test_zip_with_one_data_file_of_another_format(tmp_path):
    path = tmp_path / "llava.zip"
    conversation = [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]
    with zipfile.ZipFile(path, "w") as archive:
        rows = [{"id": "x", "image": "img/a.png", "conversations": conversation}]
        archive.writestr("set/llava.json", json.dumps(rows))
        archive.writestr("set/img/a.png", sample_png("a"))
    assert detect_format(path) == "llava"
    assert read_all(path) == [row(1, "<image>\nQ?", "A", [ImageRef(sample_png("a"), None, "img/a.png")], id="x")]


def test_readers_do_not_import_django():
    code = "import sys, lookfirst.ingest.readers; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env={"PYTHONPATH": str(root / "platform")},
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_json_arrays_are_streamed_with_a_bom_numbers_as_python_numbers_and_garbage_refused(tmp_path):
    rows = [{"problem": "Q1", "answer": 2.5, "images": [], "extra": 3}, 7, {"problem": "Q2", "answer": 4}]
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(rows).encode())
    got = read_all(tmp_path / "bom.json", "easyr1")
    assert got[1] == RowError(2, "line", "wrong type: expected a JSON object, got number")
    assert [(r.row, r.answer, r.metadata) for r in (got[0], got[2])] == [(1, "2.5", {"extra": 3}), (3, "4", {})]
    assert type(got[0].metadata["extra"]) is int  # not ijson's Decimal
    (tmp_path / "tail.json").write_text(json.dumps(rows) + " []")
    with pytest.raises(UnreadableSourceError, match=r"^tail.json is not valid JSON after row 3: parse error: trailing garbage"):
        read_source(tmp_path / "tail.json", "easyr1")


def _array_file(path: Path, rows: list[str]) -> Path:
    path.write_text("[" + ",\n".join(rows) + "]")
    return path


def test_a_json_array_nested_deeper_than_a_row_may_is_built_by_us_in_one_pass(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("ijson.items would take time growing with the square of the depth")

    monkeypatch.setattr(common.ijson, "items", refused)
    deep = "[" * 50_000 + "]" * 50_000
    path = _array_file(tmp_path / "deep.json", [
        '{"problem": "Q1", "answer": "1", "images": []}',
        '{"problem": "Q2", "answer": "1", "images": [], "extra": {"a": [1, ' + deep + ', 2]}}',
        '{"problem": "Q3", "answer": "1", "images": [], "extra": ' + "[" * 64 + "]" * 64 + '}',
        deep,
    ])

    got = read_all(path, "easyr1")

    assert got[1] == RowError(2, "extra", "value nests lists or objects more than 64 levels deep")
    assert got[3] == RowError(4, "row", "value nests lists or objects more than 64 levels deep")
    kept = []
    for _ in range(63):
        kept = [kept]
    assert [(r.row, r.question, r.metadata) for r in (got[0], got[2])] == [(1, "Q1", {}), (3, "Q3", {"extra": kept})]


def test_brackets_inside_strings_take_our_builder_and_give_the_rows_ijson_gives(tmp_path):
    rows = [{"problem": "[" * 100 + "?", "answer": 2.5, "images": [], "extra": {"a": [1, None, True, "x"], "b": -3}},
            7, {"problem": "Q2 \u00e9\u4e2d", "answer": "4", "images": [], "n": 1e300, "deep": {"k": [[{"z": []}]]}}]
    path = tmp_path / "strings.json"
    path.write_text(json.dumps(rows))
    assert common._nesting_bound(lambda: path.open("rb")) > 66  # so the rows below come from our builder

    ours = list(common.json_array_items(lambda: path.open("rb")))

    assert ours == [(1, rows[0]), RowError(2, "line", "wrong type: expected a JSON object, got number"), (3, rows[2])]
    (tmp_path / "cut.json").write_text(json.dumps(rows)[:-30])
    with pytest.raises(UnreadableSourceError, match=r"^cut.json is not valid JSON after row 2: "):
        read_source(tmp_path / "cut.json", "easyr1")


def test_a_json_array_file_is_checked_and_its_brackets_counted_once(tmp_path, monkeypatch):
    calls = []
    for name in ("json_array_check", "_nesting_bound"):
        real = getattr(common, name)
        monkeypatch.setattr(common, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    path = _array_file(tmp_path / "rows.json", ['{"problem": "Q1", "answer": "1", "images": []}'] * 2)

    got = read_all(path, "easyr1")

    assert [(r.row, r.question) for r in got] == [(1, "Q1"), (2, "Q1")]
    assert calls == ["json_array_check", "_nesting_bound"]
