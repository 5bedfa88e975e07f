"""EasyR1: `problem` with <image> placeholders, `answer`, `images`; extra columns ride along."""
from __future__ import annotations

from lookfirst.ingest.readers.common import (
    ImageResolver,
    Record,
    SourceRow,
    build_row,
    pick,
    read_answer,
    read_images,
    read_question,
)


def parse_record(record: Record, row: int, images: ImageResolver) -> SourceRow:
    question = read_question(record.get("problem"), "problem")
    answer = read_answer(record.get("answer"), "answer")
    column = pick(record, ("images", "image")) or "images"
    refs = read_images(record.get(column), column, images)
    return build_row(
        row, record, question=question, question_field="problem", answer=answer, images=refs,
        used=("problem", "answer", column),
    )
