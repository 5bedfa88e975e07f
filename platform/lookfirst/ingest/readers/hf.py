"""HF datasets (parquet shards with an Image feature) and image folders: columns found by name."""
from __future__ import annotations

from lookfirst.ingest.readers.common import (
    ImageResolver,
    Record,
    RowProblem,
    SourceRow,
    build_row,
    pick,
    read_answer,
    read_images,
    read_question,
)

IMAGE_COLUMNS = ("file_name", "images", "image")
QUESTION_COLUMNS = ("question", "query", "problem", "prompt")
ANSWER_COLUMNS = ("answer", "label", "solution")


def parse_record(record: Record, row: int, images: ImageResolver) -> SourceRow:
    question_column = pick(record, QUESTION_COLUMNS)
    if question_column is None:
        raise RowProblem("question", "question is missing: no question, query, problem or prompt column")
    question = read_question(record[question_column], question_column)
    answer_column = pick(record, ANSWER_COLUMNS)
    answer = read_answer(record[answer_column], answer_column) if answer_column else None
    image_column = pick(record, IMAGE_COLUMNS)
    refs = read_images(record[image_column], image_column, images) if image_column else []
    return build_row(
        row, record, question=question, question_field=question_column, answer=answer, images=refs,
        used=(question_column, answer_column or "", image_column or ""),
    )
