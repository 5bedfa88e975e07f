"""Evaluate a stage's model on the export's held-out split with the shared verifier.

One greedy completion per item (the deterministic number benchmarks report), scored with the same
functions the rewards use: accuracy = trainer.verify.grade on the answer the recipe's format extracts
(PeBR: text after "### The final answer is:", CapCurriculum: the last \\boxed{}), format rate = the
recipe's format check, length in generated tokens (end-of-turn token included, padding not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from trainer.rewards import capcurriculum_format, capcurriculum_reward, pebr_format, pebr_reasoning_reward


def score(text: str, answer: str | None, answer_type: str | None, style: str) -> dict[str, Any]:
    """{'correct': 1.0 / 0.0 / None (unlabelled), 'format': 1.0 / 0.0} for one completion.

    >>> score("### The final answer is: red", "red", "auto", "pebr")
    {'correct': 1.0, 'format': 0.0}
    """
    if style == "pebr":
        correct = pebr_reasoning_reward(text, answer=answer, answer_type=answer_type or "auto")["accuracy"] \
            if answer else None
        return {"correct": correct, "format": pebr_format(text)}
    correct = capcurriculum_reward(text, answer=answer, answer_type=answer_type or "auto")["accuracy"] \
        if answer else None
    return {"correct": correct, "format": capcurriculum_format(text)}


def evaluate(
    model: Any,
    processor: Any,
    dataset: Any,
    *,
    style: str,
    max_new_tokens: int,
    batch_size: int,
    max_items: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, one record per item); stops early (summary["complete"] = False) when should_stop() says so."""
    import torch

    started = time.time()
    rows = dataset if max_items is None else dataset.select(range(min(max_items, len(dataset))))
    tokenizer = processor.tokenizer
    stop_ids = _stop_ids(model, tokenizer)
    model.eval()
    records: list[dict[str, Any]] = []
    complete = True
    for start in range(0, len(rows), batch_size):
        if should_stop():
            complete = False
            break
        batch = rows.select(range(start, min(start + batch_size, len(rows))))
        texts = [processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
                 for row in batch]
        images = [image for row in batch for image in (row["images"] or [])]
        inputs = processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                    temperature=None, top_p=None, top_k=None)
        generated = output[:, inputs["input_ids"].shape[1]:]
        for row, ids in zip(batch, generated.tolist()):
            ids = _until_stop(ids, stop_ids)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            records.append({"item_id": row["item_id"], "stage": row.get("stage"), "answer": row["answer"],
                            "completion": text, "length": len(ids),
                            **score(text, row["answer"], row.get("answer_type"), style)})
    return summarise(records, complete, time.time() - started, max_new_tokens), records


def summarise(records: list[dict[str, Any]], complete: bool, seconds: float, max_new_tokens: int) -> dict[str, Any]:
    labelled = [r for r in records if r["correct"] is not None]
    summary = {
        "n_items": len(records),
        "n_labelled": len(labelled),
        "accuracy": _mean([r["correct"] for r in labelled]),
        "format_rate": _mean([r["format"] for r in records]),
        "mean_completion_length": _mean([r["length"] for r in records]),
        "decoding": "greedy",
        "max_new_tokens": max_new_tokens,
        "complete": complete,
        "seconds": round(seconds, 3),
    }
    stages = sorted({r["stage"] for r in records if r["stage"]})
    if len(stages) > 1:  # the held-out split mixes stages: accuracy per stage too
        summary["by_stage"] = {
            stage: {"n_items": sum(r["stage"] == stage for r in records),
                    "accuracy": _mean([r["correct"] for r in labelled if r["stage"] == stage])}
            for stage in stages
        }
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return (ids | {tokenizer.eos_token_id}) - {None}


def _until_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    """Tokens up to and including the first end token (what a completion's length counts)."""
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[:i + 1]
    return ids
