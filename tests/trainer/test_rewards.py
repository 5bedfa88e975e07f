"""Reward functions of the anchor recipes, exact values on hand-made responses (trainer/rewards.py)."""

from __future__ import annotations

import doctest

import pytest

from trainer import rewards
from trainer.rewards import (
    boxed_answer,
    capcurriculum_reward,
    description_section,
    empo_rewards,
    majority_vote_rewards,
    pebr_format,
    pebr_perception_reward,
    pebr_reasoning_reward,
)

FULL = (
    "### Image Description: A red bus parked next to a brown dog.\n"
    "### Rationales: The question asks how many animals there are.\n"
    "### Step 1: I see one dog.\n"
    "### The final answer is: 1\n"
)
NO_STEP = FULL.replace("### Step 1:", "Step 1:")
KEY_WORDS = ["bus", "DOG", "cat", "tree"]  # two of four appear in FULL


# ---------------------------------------------------------------- PeBR stage 1


def test_description_section():
    assert description_section(FULL) == "A red bus parked next to a brown dog."
    assert description_section("### Image Description: a cat\n### Step 1: x") == "a cat"
    assert description_section("### Image Description:  a cat  ") == "a cat"
    assert description_section("no headers") == ""


def test_pebr_format_needs_all_four_headers():
    assert pebr_format(FULL) == 1.0
    assert pebr_format(NO_STEP) == 0.0
    assert pebr_format(FULL.lower()) == 0.0
    assert pebr_format("") == 0.0


def test_perception_reward_all_components():
    result = pebr_perception_reward(FULL, key_words=KEY_WORDS, image_text_similarity=0.3, n_tokens=600)
    assert result == {
        "clip": 0.3 / 0.4,
        "keyword": 0.5,
        "format": 1.0,
        "length": 512 / 600,
        "total": 0.4 * (0.3 / 0.4) + 0.4 * 0.5 + 0.1 * 1.0 + 0.1 * (512 / 600),
    }
    assert result["clip"] == pytest.approx(0.75)
    assert result["total"] == pytest.approx(0.3 + 0.2 + 0.1 + 0.1 * 512 / 600) == pytest.approx(0.685333333333)
    assert "accuracy" not in result


@pytest.mark.parametrize(("similarity", "clip"), [
    (None, 0.0), (float("nan"), 0.0), (-0.2, 0.0), (0.0, 0.0), (0.1, 0.25), (0.3, 0.75), (0.4, 1.0), (0.9, 1.0),
])
def test_perception_clip_component(similarity, clip):
    result = pebr_perception_reward(FULL, key_words=[], image_text_similarity=similarity, n_tokens=10)
    assert result["clip"] == pytest.approx(clip)


@pytest.mark.parametrize(("n_tokens", "length"), [(0, 1.0), (512, 1.0), (513, 512 / 513), (1024, 0.5)])
def test_perception_length_component(n_tokens, length):
    assert pebr_perception_reward(FULL, key_words=[], image_text_similarity=None,
                                  n_tokens=n_tokens)["length"] == length


def test_perception_keyword_component():
    def keyword(words):
        return pebr_perception_reward(FULL, key_words=words, image_text_similarity=None, n_tokens=1)["keyword"]

    assert keyword([]) == 0.0
    assert keyword(["Bus"]) == 1.0
    assert keyword(["bus", "dog", "brown"]) == 1.0
    assert keyword(["cat"]) == 0.0
    assert keyword(["animals", "giraffe", "red bus", "zebra", "tree"]) == 0.4  # substrings of the whole response


def test_perception_minimum_and_maximum_totals():
    worst = pebr_perception_reward("", key_words=["x"], image_text_similarity=None, n_tokens=1024)
    assert worst == {"clip": 0.0, "keyword": 0.0, "format": 0.0, "length": 0.5, "total": 0.1 * 0.5}
    best = pebr_perception_reward(FULL, key_words=["bus", "dog"], image_text_similarity=0.5, n_tokens=100)
    assert best["total"] == pytest.approx(1.0)


def test_perception_logs_accuracy_with_zero_weight():
    right = pebr_perception_reward(FULL, key_words=KEY_WORDS, image_text_similarity=0.3, n_tokens=600,
                                   answer="1")
    wrong = pebr_perception_reward(FULL, key_words=KEY_WORDS, image_text_similarity=0.3, n_tokens=600,
                                   answer="2")
    assert right["accuracy"] == 1.0
    assert wrong["accuracy"] == 0.0
    assert right["total"] == wrong["total"] == 0.4 * (0.3 / 0.4) + 0.4 * 0.5 + 0.1 * 1.0 + 0.1 * (512 / 600)


# ---------------------------------------------------------------- PeBR stage 2


@pytest.mark.parametrize(("response", "answer", "expected"), [
    (FULL, "1", {"accuracy": 1.0, "format": 1.0, "total": 1.0}),
    (FULL, "2", {"accuracy": 0.0, "format": 1.0, "total": 0.1}),
    (NO_STEP, "1", {"accuracy": 1.0, "format": 0.0, "total": 0.9}),
    ("I am not sure.", "1", {"accuracy": 0.0, "format": 0.0, "total": 0.0}),
    (FULL.replace("is: 1", "is: B. one dog"), "B", {"accuracy": 1.0, "format": 1.0, "total": 1.0}),
])
def test_reasoning_reward(response, answer, expected):
    assert pebr_reasoning_reward(response, answer=answer) == expected


def test_reasoning_reward_honours_the_answer_type():
    response = FULL.replace("is: 1", "is: Yes.")
    assert pebr_reasoning_reward(response, answer="yes", answer_type="yes_no")["accuracy"] == 1.0


# ---------------------------------------------------------------- CapCurriculum


@pytest.mark.parametrize(("response", "answer", "expected"), [
    ("<think>four sides</think> So it is \\boxed{B}.", "B", {"accuracy": 1.0, "format": 1.0, "total": 1.0}),
    ("<think>\nmulti\nline\n</think>\n\\boxed{\\frac{1}{2}}\n", "0.5", {"accuracy": 1.0, "format": 1.0, "total": 1.0}),
    ("<think>x</think> \\boxed{C}", "B", {"accuracy": 0.0, "format": 1.0, "total": 0.1}),
    ("So it is \\boxed{B}.", "B", {"accuracy": 1.0, "format": 0.0, "total": 0.9}),
    (" <think>x</think> \\boxed{B}", "B", {"accuracy": 1.0, "format": 0.0, "total": 0.9}),  # full match
    ("<think>x</think> The answer is B.", "B", {"accuracy": 0.0, "format": 0.0, "total": 0.0}),  # boxed only
    ("\\boxed{B}<think>x</think>", "B", {"accuracy": 1.0, "format": 0.0, "total": 0.9}),
])
def test_capcurriculum_reward(response, answer, expected):
    assert capcurriculum_reward(response, answer=answer) == expected


def test_boxed_answer():
    assert boxed_answer("\\boxed{1} and \\boxed{ {a}{b} }") == "{a}{b}"
    assert boxed_answer("\\boxed{open") is None
    assert boxed_answer("") is None


# ---------------------------------------------------------------- label-free


def test_majority_vote_rewards():
    responses = ["Answer: 3", "The answer is 3.0", "Answer: 4", "<answer>3</answer>", "### The final answer is:"]
    assert majority_vote_rewards(responses) == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_majority_vote_rewards_tie_goes_to_the_first_class():
    assert majority_vote_rewards(["Answer: B", "Answer: C", "Answer: (C)", "Answer: B."]) == [1.0, 0.0, 0.0, 1.0]


def test_majority_vote_rewards_without_answers():
    assert majority_vote_rewards(["", "   "]) == [0.0, 0.0]
    assert majority_vote_rewards([]) == []


def test_empo_rewards():
    responses = ["Answer: B", "Answer: (B)", "Answer: C", "", "\\boxed{B}"]
    assert empo_rewards(responses) == [3 / 5, 3 / 5, 1 / 5, 0.0, 3 / 5]
    assert empo_rewards(["Answer: 1/2", "Answer: 0.5"], answer_type="number") == [1.0, 1.0]
    assert empo_rewards([]) == []


# ---------------------------------------------------------------- doctests


def test_docstring_examples_run():
    result = doctest.testmod(rewards)
    assert result.failed == 0
    assert result.attempted > 0
