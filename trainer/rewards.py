r"""Reward functions of the anchor recipes (science.md "Rewards" and "Label-free rewards").

Pure and typed: the caller computes what needs a model (the CLIP cosine, the token count) and passes
numbers in. Each reward returns its components as well as the total, so every component can be logged.

>>> r = pebr_reasoning_reward("### Image Description: x\n### Rationales: y\n### Step 1: z\n"
...                           "### The final answer is: 4", answer="4")
>>> r["total"]
1.0
"""

from __future__ import annotations

import math
import re
from collections import Counter

from trainer.verify import equivalence_classes, extract_answer, grade, last_boxed

PEBR_HEADERS = ("### Image Description:", "### Rationales:", "### Step 1:", "### The final answer is:")
# PeBR-R1 stage 1: 0.4 clip + 0.4 keyword + 0.1 format + 0.1 length.
PERCEPTION_WEIGHTS = {"clip": 0.4, "keyword": 0.4, "format": 0.1, "length": 0.1}
CLIP_FULL_REWARD_AT = 0.4  # a description at cosine >= 0.4 with the image earns the whole clip reward
MAX_REWARDED_TOKENS = 512  # longer responses earn 512 / length of the length reward
# PeBR-R1 stage 2 and CapCurriculum: 0.9 accuracy + 0.1 format.
ACCURACY_WEIGHT = 0.9
FORMAT_WEIGHT = 0.1
# EasyR1's math format: think block, then a boxed answer (fullmatch, DOTALL), as CapCurriculum uses it.
CAPCURRICULUM_FORMAT = re.compile(r"<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)


def pebr_format(response: str) -> float:
    r"""1.0 when all four PeBR headers are present (anywhere, case-sensitive), else 0.0.

    >>> pebr_format("### Image Description: a\n### Rationales: b\n### Step 1: c\n### The final answer is: d")
    1.0
    >>> pebr_format("### Image Description: a\n### The final answer is: d")
    0.0
    """
    return 1.0 if all(header in response for header in PEBR_HEADERS) else 0.0


def description_section(response: str) -> str:
    r"""The text after "### Image Description:" up to "### Rationales:" (or the next "###", or the end).

    This is what the caller embeds with CLIP to get ``image_text_similarity``.

    >>> description_section("### Image Description: A red bus.\n### Rationales: ...")
    'A red bus.'
    >>> description_section("no headers")
    ''
    """
    start = response.find(PEBR_HEADERS[0])
    if start < 0:
        return ""
    section = response[start + len(PEBR_HEADERS[0]):]
    end = section.find(PEBR_HEADERS[1])
    if end < 0:
        end = section.find("###")
    return (section if end < 0 else section[:end]).strip()


def pebr_perception_reward(
    response: str,
    *,
    key_words: list[str],
    image_text_similarity: float | None,
    n_tokens: int,
    answer: str | None = None,
    answer_type: str = "auto",
) -> dict[str, float]:
    r"""PeBR-R1 stage-1 reward: 0.4 clip + 0.4 keyword + 0.1 format + 0.1 length.

    clip = 1 if s >= 0.4 else max(0, s) / 0.4, with s the cosine between the image and
    ``description_section(response)`` (None -> 0); keyword = matched / len(key_words), a keyword
    matching when it is a case-insensitive substring of the whole response (empty list -> 0);
    format = ``pebr_format``; length = 1 if n_tokens <= 512 else 512 / n_tokens. When ``answer`` is
    given, "accuracy" is added for logging with weight 0 (Easy items would give zero advantage).

    >>> response = ("### Image Description: a red bus and a dog\n### Rationales: count\n"
    ...             "### Step 1: one dog\n### The final answer is: 1")
    >>> r = pebr_perception_reward(response, key_words=["bus", "Dog", "cat", "tree"],
    ...                            image_text_similarity=0.3, n_tokens=600, answer="1")
    >>> {k: round(v, 4) for k, v in r.items()}
    {'clip': 0.75, 'keyword': 0.5, 'format': 1.0, 'length': 0.8533, 'total': 0.6853, 'accuracy': 1.0}
    """
    rewards = {
        "clip": _clip_reward(image_text_similarity),
        "keyword": _keyword_reward(response, key_words),
        "format": pebr_format(response),
        "length": 1.0 if n_tokens <= MAX_REWARDED_TOKENS else MAX_REWARDED_TOKENS / n_tokens,
    }
    rewards["total"] = sum(PERCEPTION_WEIGHTS[name] * rewards[name] for name in PERCEPTION_WEIGHTS)
    if answer is not None:
        rewards["accuracy"] = float(grade(extract_answer(response), answer, answer_type))
    return rewards


def _clip_reward(similarity: float | None) -> float:
    if similarity is None or math.isnan(similarity):
        return 0.0
    if similarity >= CLIP_FULL_REWARD_AT:
        return 1.0
    return max(0.0, similarity) / CLIP_FULL_REWARD_AT


def _keyword_reward(response: str, key_words: list[str]) -> float:
    if not key_words:
        return 0.0
    text = response.lower()
    matched = sum(1 for word in key_words if word.strip() and word.lower() in text)
    return matched / len(key_words)


def pebr_reasoning_reward(response: str, *, answer: str, answer_type: str = "auto") -> dict[str, float]:
    """PeBR-R1 stage-2 reward: 0.9 accuracy + 0.1 format (the same four-header check).

    Accuracy grades ``extract_answer(response)`` (the text after "### The final answer is:" first).

    >>> pebr_reasoning_reward("The answer is 5", answer="4")
    {'accuracy': 0.0, 'format': 0.0, 'total': 0.0}
    """
    accuracy = float(grade(extract_answer(response), answer, answer_type))
    format_ = pebr_format(response)
    return {"accuracy": accuracy, "format": format_, "total": ACCURACY_WEIGHT * accuracy + FORMAT_WEIGHT * format_}


def capcurriculum_reward(response: str, *, answer: str, answer_type: str = "auto") -> dict[str, float]:
    r"""CapCurriculum reward (all three stages): 0.9 accuracy + 0.1 format.

    The answer is the content of the last ``\boxed{}`` only (no other extraction: no box, no credit);
    format is a full match of ``<think>.*</think>.*\\boxed\{.*\}.*`` (DOTALL) on the raw response.

    >>> capcurriculum_reward(r"<think>4 sides</think> It is \boxed{B}.", answer="B")
    {'accuracy': 1.0, 'format': 1.0, 'total': 1.0}
    >>> capcurriculum_reward("<think>hmm</think> B", answer="B")
    {'accuracy': 0.0, 'format': 0.0, 'total': 0.0}
    """
    boxed = boxed_answer(response)
    accuracy = float(grade(boxed, answer, answer_type))
    format_ = 1.0 if CAPCURRICULUM_FORMAT.fullmatch(response) else 0.0
    return {"accuracy": accuracy, "format": format_, "total": ACCURACY_WEIGHT * accuracy + FORMAT_WEIGHT * format_}


def boxed_answer(response: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (balanced braces), or None.

    >>> boxed_answer(r"\boxed{1} then \boxed{\frac{1}{2}}"), boxed_answer("none")
    ('\\frac{1}{2}', None)
    """
    content = last_boxed(response, commands=("boxed",))
    return None if content is None else content.strip()


def majority_vote_rewards(responses: list[str], answer_type: str = "auto") -> list[float]:
    """TTRL / MM-UPT: 1.0 for responses whose answer is in the majority class, else 0.0.

    The majority class is the one ``majority_vote`` picks (equivalent answers pooled, ties to the first
    occurrence); a response with no extractable answer gets 0.0, and so does everyone when no response
    has an answer.

    >>> majority_vote_rewards(["The answer is 3", "Answer: 3.0", "Answer: 4", "..."])
    [1.0, 1.0, 0.0, 0.0]
    """
    ids = equivalence_classes([extract_answer(response) for response in responses], answer_type)
    sizes = Counter(class_id for class_id in ids if class_id >= 0)
    if not sizes:
        return [0.0] * len(responses)
    # Class ids count up in order of first occurrence, so the smallest id wins a tie.
    winner = min(sizes, key=lambda class_id: (-sizes[class_id], class_id))
    return [1.0 if class_id == winner else 0.0 for class_id in ids]


def empo_rewards(responses: list[str], answer_type: str = "auto") -> list[float]:
    """EMPO: r_i = |class(i)| / G, classes of equivalent answers; no extractable answer -> 0.0.

    >>> empo_rewards(["Answer: B", "Answer: (B)", "Answer: C", ""])
    [0.5, 0.5, 0.25, 0.0]
    """
    ids = equivalence_classes([extract_answer(response) for response in responses], answer_type)
    sizes = Counter(ids)
    return [sizes[class_id] / len(responses) if class_id >= 0 else 0.0 for class_id in ids]


def capcurriculum_format(response: str) -> float:
    r"""CapCurriculum's format component alone (what ``capcurriculum_reward`` reports as "format").

    For rows without an answer, whose accuracy comes from a label-free reward instead.

    >>> capcurriculum_format(r"<think>x</think> \boxed{B}"), capcurriculum_format(r"\boxed{B}")
    (1.0, 0.0)
    """
    return 1.0 if CAPCURRICULUM_FORMAT.fullmatch(response) else 0.0
