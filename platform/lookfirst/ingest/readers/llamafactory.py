"""LLaMA-Factory: `messages` [{role, content}] with <image> placeholders, and `images`."""
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
    chat = read_chat(record.get("messages"), "messages")
    answer = chat_answer(chat, "messages")
    image_column = pick(record, ("images", "image")) or "images"
    refs = read_images(record.get(image_column), image_column, images)
    others = chat.others(keep_answer=False)
    return build_row(
        row, record, question=chat.question, question_field="messages", answer=answer, images=refs,
        used=("messages", image_column), extra={"extra_messages": others} if others else None,
    )
