"""LLaVA / VLM-R1: `image` (one or a list) and `conversations` [{from: human|gpt, value}]."""
from __future__ import annotations

from lookfirst.ingest.readers.common import (
    ImageResolver,
    Record,
    SourceRow,
    build_row,
    chat_answer,
    pick,
    read_chat,
    read_images,
)


def parse_record(record: Record, row: int, images: ImageResolver) -> SourceRow:
    chat = read_chat(record.get("conversations"), "conversations")
    answer = chat_answer(chat, "conversations")
    image_column = pick(record, ("image", "images")) or "image"
    refs = read_images(record.get(image_column), image_column, images)
    others = chat.others(keep_answer=False)
    return build_row(
        row, record, question=chat.question, question_field="conversations", answer=answer, images=refs,
        used=("conversations", image_column), extra={"extra_messages": others} if others else None,
    )
