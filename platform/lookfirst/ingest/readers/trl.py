"""TRL GRPOTrainer: conversational `prompt` (image blocks are placeholders), `image` or `images`, a solution."""
from __future__ import annotations

from lookfirst.ingest.readers.common import (
    ImageResolver,
    Record,
    SourceRow,
    build_row,
    pick,
    read_answer,
    read_chat,
    read_images,
    read_question,
)

ANSWER_COLUMNS = ("solution", "answer", "ground_truth")


def parse_record(record: Record, row: int, images: ImageResolver) -> SourceRow:
    prompt = record.get("prompt")
    extra: Record = {}
    if isinstance(prompt, str):  # TRL's "standard" (non-conversational) prompt
        question = read_question(prompt, "prompt")
    else:
        chat = read_chat(prompt, "prompt")
        question = chat.question
        if others := chat.others(keep_answer=True):
            extra["extra_messages"] = others
    answer_column = pick(record, ANSWER_COLUMNS)
    answer = read_answer(record[answer_column], answer_column) if answer_column else None
    image_column = pick(record, ("images", "image")) or "images"
    refs = read_images(record.get(image_column), image_column, images)
    return build_row(
        row, record, question=question, question_field="prompt", answer=answer, images=refs,
        used=("prompt", image_column, answer_column or ""), extra=extra,
    )
