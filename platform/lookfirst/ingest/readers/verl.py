"""verl: chat `prompt`, `images`, `reward_model.ground_truth`; `extra_info`, `data_source`, `ability` kept."""
from __future__ import annotations

from typing import Any

from lookfirst.ingest.readers.common import (
    ImageResolver,
    Record,
    RowProblem,
    SourceRow,
    build_row,
    read_answer,
    read_chat,
    read_images,
    read_question,
    type_name,
)


def parse_record(record: Record, row: int, images: ImageResolver) -> SourceRow:
    extra_info = record.get("extra_info") if isinstance(record.get("extra_info"), dict) else {}
    extra: Record = {}
    if record.get("prompt") is None and extra_info.get("question") is not None:
        question = read_question(extra_info["question"], "extra_info.question")
    else:
        chat = read_chat(record.get("prompt"), "prompt")
        question = chat.question
        if others := chat.others(keep_answer=True):
            extra["extra_messages"] = others
    answer, reward_rest = _answer(record.get("reward_model"), extra_info)
    if reward_rest:
        extra["reward_model"] = reward_rest
    refs = read_images(record.get("images"), "images", images)
    return build_row(
        row, record, question=question, question_field="prompt", answer=answer, images=refs,
        used=("prompt", "images", "reward_model"), extra=extra,
    )


def _answer(reward: Any, extra_info: Record) -> tuple[str | None, Record]:
    """The ground truth, and what else reward_model holds (its style) for metadata."""
    if reward is None:
        return read_answer(extra_info.get("answer"), "extra_info.answer"), {}
    if not isinstance(reward, dict):
        raise RowProblem("reward_model", f"wrong type: expected an object with ground_truth, got {type_name(reward)}")
    rest = {key: value for key, value in reward.items() if key != "ground_truth"}
    return read_answer(reward.get("ground_truth"), "reward_model.ground_truth"), rest
