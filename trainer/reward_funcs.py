r"""The recipes' rewards as TRL reward functions: one function per component, weighted by TRL.

TRL calls each function with the batch's prompts, completions, completion_ids and every other dataset
column as a keyword argument (answer, answer_type, key_words, images, item_id, ...), and logs each
function's mean as `rewards/<function name>/mean` plus the weighted sum as `reward`. So every component is
its own function named after the component, and `reward_weights` carries the recipe's weights:

    pebr_perception  clip 0.4, keyword 0.4, format 0.1, length 0.1, accuracy 0.0 (logged, not rewarded)
    pebr_reasoning   accuracy 0.9, format 0.1 (four PeBR headers), majority_vote 0.9 (unlabelled rows)
    capcurriculum    accuracy 0.9 (\boxed{} only), format 0.1 (<think>...</think>...\boxed{}), majority_vote 0.9

Each value comes from trainer/rewards.py (the same functions the tests pin), never recomputed here. A
function returns None for rows it does not apply to (accuracy on an unlabelled row, the label-free reward on
a labelled one); TRL skips None in both the weighted sum and the logged mean, so each row gets exactly one of
accuracy / label-free at weight 0.9.

>>> funcs, weights = reward_functions("pebr_reasoning", num_generations=2)
>>> [f.__name__ for f in funcs], weights
(['accuracy', 'format', 'majority_vote'], [0.9, 0.1, 0.9])
>>> done = [[{"role": "assistant", "content": "### The final answer is: red"}], "Answer: blue"]
>>> funcs[0](prompts=[None, None], completions=done, answer=["red", None], answer_type=["auto", "auto"])
[1.0, None]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from trainer.rewards import (
    ACCURACY_WEIGHT,
    FORMAT_WEIGHT,
    PERCEPTION_WEIGHTS,
    capcurriculum_format,
    capcurriculum_reward,
    description_section,
    empo_rewards,
    majority_vote_rewards,
    pebr_format,
    pebr_perception_reward,
    pebr_reasoning_reward,
)

logger = logging.getLogger("trainer.rewards")
REWARDS = ("pebr_perception", "pebr_reasoning", "capcurriculum")
RewardFunc = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string, or a conversation [{"role", "content"}] (content may be blocks).

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion or []:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(block.get("text") or "" for block in content if isinstance(block, dict))
    return "".join(parts)


def _named(name: str, func: RewardFunc) -> RewardFunc:
    func.__name__ = func.__qualname__ = name  # TRL logs rewards/<__name__>/mean
    return func


def _labelled(answer: Any) -> bool:
    return isinstance(answer, str) and answer.strip() != ""


def _column(kwargs: dict[str, Any], name: str, n: int, default: Any = None) -> list[Any]:
    values = kwargs.get(name)
    return list(values) if values is not None else [default] * n


# ---------------------------------------------------------------- PeBR stage 1 components


def perception_component(name: str, clip: Any = None) -> RewardFunc:
    """One component of `pebr_perception_reward` ('clip', 'keyword', 'format', 'length') as a TRL function.

    clip needs `clip` (a ClipScorer): the cosine of the row's first image with the response's
    "### Image Description:" section; no scorer, no image or no section -> 0 (the scorer-less case warns once).
    length counts the completion's tokens (TRL's completion_ids).
    """
    if name not in PERCEPTION_WEIGHTS:
        raise ValueError(f"unknown perception component {name!r}")
    warned = []

    def reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        n = len(texts)
        key_words = _column(kwargs, "key_words", n, [])
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [0] * n
        similarities: list[float | None] = [None] * n
        if name == "clip":
            similarities = _similarities(clip, texts, _column(kwargs, "images", n, []), warned)
        return [
            pebr_perception_reward(text, key_words=list(words or []), image_text_similarity=similarity,
                                   n_tokens=length)[name]
            for text, words, similarity, length in zip(texts, key_words, similarities, lengths)
        ]

    return _named(name, reward)


def _similarities(clip: Any, texts: list[str], images: list[Any], warned: list) -> list[float | None]:
    if clip is None:
        if not warned:
            logger.warning("no --clip model given: the PeBR clip reward component is 0 for every completion")
            warned.append(True)
        return [None] * len(texts)
    descriptions = [description_section(text) for text in texts]
    wanted = [i for i, (text, row_images) in enumerate(zip(descriptions, images)) if text and row_images]
    scores = clip.similarities([images[i][0] for i in wanted], [descriptions[i] for i in wanted])
    similarities: list[float | None] = [None] * len(texts)
    for i, score in zip(wanted, scores):
        similarities[i] = score
    return similarities


# ---------------------------------------------------------------- accuracy and format


def accuracy(style: str) -> RewardFunc:
    """Graded accuracy of labelled rows (None on unlabelled ones): PeBR extraction or CapCurriculum's \\boxed{}."""

    def reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        answers, types = _column(kwargs, "answer", n), _column(kwargs, "answer_type", n, "auto")
        out: list[float | None] = []
        for completion, answer, answer_type in zip(completions, answers, types):
            if not _labelled(answer):
                out.append(None)
                continue
            text = completion_text(completion)
            grade = pebr_reasoning_reward if style == "pebr" else capcurriculum_reward
            out.append(grade(text, answer=answer, answer_type=answer_type or "auto")["accuracy"])
        return out

    return _named("accuracy", reward)


def format_reward(style: str) -> RewardFunc:
    """PeBR's four-header check or CapCurriculum's <think>...</think>...\\boxed{} full match, on every row."""
    check = pebr_format if style == "pebr" else capcurriculum_format

    def reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        return [check(completion_text(c)) for c in completions]

    return _named("format", reward)


# ---------------------------------------------------------------- label-free (unlabelled rows)


def label_free(kind: str, num_generations: int) -> RewardFunc:
    """'majority_vote' or 'empo' within each group of `num_generations` consecutive rows, on unlabelled rows.

    TRL lays a generation batch out as groups of num_generations consecutive completions of one prompt (the
    same grouping its advantages use); the function checks that each group holds one item_id, because a
    group split across devices would vote on part of the group.
    """
    vote = {"majority_vote": majority_vote_rewards, "empo": empo_rewards}[kind]

    def reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        answers, types = _column(kwargs, "answer", n), _column(kwargs, "answer_type", n, "auto")
        item_ids = _column(kwargs, "item_id", n)
        if n % num_generations:
            raise ValueError(f"{kind}: {n} completions is not a whole number of groups of {num_generations}")
        out: list[float | None] = [None] * n
        for start in range(0, n, num_generations):
            group = range(start, start + num_generations)
            if len({item_ids[i] for i in group}) != 1:
                raise ValueError(f"{kind}: a group of {num_generations} completions mixes items "
                                 f"{sorted({str(item_ids[i]) for i in group})}; make rollout_batch_prompts a "
                                 f"multiple of the device count so every device holds whole groups")
            if _labelled(answers[start]):
                continue
            scores = vote([completion_text(completions[i]) for i in group], types[start] or "auto")
            for i, score in zip(group, scores):
                out[i] = score
        return out

    return _named(kind, reward)


# ---------------------------------------------------------------- per recipe stage


def reward_functions(
    reward: str, *, num_generations: int, label_free_reward: str = "majority_vote", clip: Any = None
) -> tuple[list[RewardFunc], list[float]]:
    """(TRL reward functions, reward_weights) of a stage reward ('pebr_perception', 'pebr_reasoning',
    'capcurriculum'); `label_free_reward` 'skip' adds no label-free function (the stage drops those rows)."""
    if reward == "pebr_perception":
        funcs = [perception_component(name, clip) for name in PERCEPTION_WEIGHTS]
        weights = list(PERCEPTION_WEIGHTS.values())
        # Accuracy is logged with weight 0: Easy items are all solved, so it would give no advantage.
        return [*funcs, accuracy("pebr")], [*weights, 0.0]
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; one of {REWARDS}")
    style = "pebr" if reward == "pebr_reasoning" else "capcurriculum"
    funcs, weights = [accuracy(style), format_reward(style)], [ACCURACY_WEIGHT, FORMAT_WEIGHT]
    if label_free_reward != "skip":
        # Same weight as accuracy: an unlabelled row's vote stands in for its missing grade.
        funcs.append(label_free(label_free_reward, num_generations))
        weights.append(ACCURACY_WEIGHT)
    return funcs, weights


def component_names(reward: str, label_free_reward: str = "majority_vote") -> list[str]:
    """Names of the components a stage logs (metrics.jsonl has reward/<name> for each)."""
    funcs, _ = reward_functions(reward, num_generations=2, label_free_reward=label_free_reward)
    return [f.__name__ for f in funcs]
