"""The TRL reward wrappers (trainer/reward_funcs.py): exact values on hand-made completions."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from trainer.reward_funcs import (
    accuracy,
    completion_text,
    component_names,
    format_reward,
    label_free,
    perception_component,
    reward_functions,
)

FULL = (
    "### Image Description: A red square on a white background.\n"
    "### Rationales: The question asks for the colour.\n"
    "### Step 1: The square is red.\n"
    "### The final answer is: red"
)
NO_HEADERS = "It is red."


def as_trl(*texts: str) -> list[list[dict]]:
    """Completions as TRL passes them for conversational prompts."""
    return [[{"role": "assistant", "content": text}] for text in texts]


def call(func, completions, **columns):
    n = len(completions)
    columns.setdefault("completion_ids", [[0] * 10] * n)
    return func(prompts=[None] * n, completions=completions, **columns)


class FixedClip:
    """Stands in for ClipScorer: returns given cosines and records what it was asked."""

    def __init__(self, cosines):
        self.cosines, self.calls = list(cosines), []

    def similarities(self, images, texts):
        self.calls.append(list(texts))
        return self.cosines[:len(texts)]


def red_square() -> Image.Image:
    return Image.new("RGB", (32, 32), "red")


# ---------------------------------------------------------------- names: what TRL logs


def test_each_component_is_a_function_named_for_trl():
    from trl.trainer.utils import get_callable_name

    funcs, weights = reward_functions("pebr_perception", num_generations=2)
    assert [get_callable_name(f) for f in funcs] == ["clip", "keyword", "format", "length", "accuracy"]
    assert weights == [0.4, 0.4, 0.1, 0.1, 0.0]
    funcs, weights = reward_functions("pebr_reasoning", num_generations=2)
    assert [get_callable_name(f) for f in funcs] == ["accuracy", "format", "majority_vote"]
    assert weights == [0.9, 0.1, 0.9]
    funcs, weights = reward_functions("capcurriculum", num_generations=2, label_free_reward="empo")
    assert [get_callable_name(f) for f in funcs] == ["accuracy", "format", "empo"]
    assert weights == [0.9, 0.1, 0.9]
    assert component_names("capcurriculum", "skip") == ["accuracy", "format"]
    with pytest.raises(ValueError, match="unknown reward"):
        reward_functions("nope", num_generations=2)


def test_completion_text_reads_every_trl_shape():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "chat"}]) == "chat"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                               {"type": "text", "text": "b"}]}]) == "ab"


# ---------------------------------------------------------------- PeBR perception components


def test_keyword_component():
    keyword = perception_component("keyword")
    out = call(keyword, as_trl(FULL, FULL, NO_HEADERS),
               key_words=[["red", "SQUARE", "circle", "blue"], [], ["red"]])
    assert out == [0.5, 0.0, 1.0]


def test_format_and_length_components():
    fmt, length = perception_component("format"), perception_component("length")
    completions = as_trl(FULL, NO_HEADERS, FULL)
    ids = [[1] * 512, [1] * 513, [1] * 1024]
    assert call(fmt, completions, completion_ids=ids) == [1.0, 0.0, 1.0]
    assert call(length, completions, completion_ids=ids) == [1.0, 512 / 513, 0.5]


def test_clip_component_scores_the_description_with_the_first_image():
    clip = FixedClip([0.3, 0.5])
    component = perception_component("clip", clip)
    completions = as_trl(FULL, NO_HEADERS, FULL.replace("red square", "blue circle"))
    images = [[red_square()], [red_square()], [red_square(), red_square()]]
    assert call(component, completions, images=images) == [0.3 / 0.4, 0.0, 1.0]
    # only rows with a description section are embedded
    assert clip.calls == [["A red square on a white background.", "A blue circle on a white background."]]


def test_clip_component_is_zero_without_an_image():
    clip = FixedClip([0.3])
    assert call(perception_component("clip", clip), as_trl(FULL), images=[[]]) == [0.0]
    assert clip.calls == [[]]


def test_clip_component_without_a_model_is_zero_and_warns_once(caplog):
    component = perception_component("clip", None)
    with caplog.at_level(logging.WARNING, logger="trainer.rewards"):
        assert call(component, as_trl(FULL, FULL), images=[[red_square()]] * 2) == [0.0, 0.0]
        assert call(component, as_trl(FULL), images=[[red_square()]]) == [0.0]
    warnings = [r for r in caplog.records if "no --clip" in r.getMessage()]
    assert len(warnings) == 1


def test_clip_component_with_a_real_tiny_clip(tmp_path):
    """ClipScorer's cosine equals open_clip's own, and the reward follows s / 0.4 capped at 1."""
    import open_clip
    import torch

    from trainer.clip import ClipScorer
    from workers.models.tiny import tiny_clip

    folder = tiny_clip(tmp_path / "clip")
    scorer = ClipScorer(f"local-dir:{folder}")
    image = red_square()
    [cosine] = scorer.similarities([image], ["A red square on a white background."])

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.inference_mode():
        expected = (model.encode_image(preprocess(image)[None], normalize=True)
                    * model.encode_text(tokenizer(["A red square on a white background."]), normalize=True)).sum()
    assert cosine == pytest.approx(expected.item(), abs=1e-6)
    [reward] = call(perception_component("clip", scorer), as_trl(FULL), images=[[image]])
    assert reward == pytest.approx(min(1.0, max(0.0, cosine) / 0.4))


def test_clip_scorer_refuses_a_folder_without_a_model(tmp_path):
    from trainer.clip import ClipError, ClipScorer

    with pytest.raises(ClipError, match="open_clip_config.json is missing"):
        ClipScorer(f"local-dir:{tmp_path}")


# ---------------------------------------------------------------- accuracy and format


def test_accuracy_grades_labelled_rows_and_skips_unlabelled():
    pebr = accuracy("pebr")
    completions = as_trl(FULL, FULL, FULL, NO_HEADERS)
    out = call(pebr, completions, answer=["red", "blue", None, "red"], answer_type=["auto", "auto", "auto", None])
    assert out == [1.0, 0.0, None, 0.0]  # "It is red." has no extractable "red" answer line -> last line "It is red"


def test_capcurriculum_accuracy_reads_only_the_box():
    cap = accuracy("capcurriculum")
    completions = as_trl("<think>x</think> \\boxed{B}", "<think>x</think> The answer is B", "\\boxed{0.5}")
    assert call(cap, completions, answer=["B", "B", "1/2"], answer_type=["auto", "auto", "number"]) == [1.0, 0.0, 1.0]


def test_format_rewards():
    completions = as_trl(FULL, "<think>a</think> \\boxed{1}", "")
    assert call(format_reward("pebr"), completions) == [1.0, 0.0, 0.0]
    assert call(format_reward("capcurriculum"), completions) == [0.0, 1.0, 0.0]


# ---------------------------------------------------------------- label-free rewards, per group


def test_majority_vote_within_each_group_on_unlabelled_rows_only():
    vote = label_free("majority_vote", num_generations=3)
    completions = as_trl("Answer: 3", "Answer: 3.0", "Answer: 4",  # item 1, unlabelled: 3 wins
                         "Answer: 4", "Answer: 3", "Answer: 3",  # item 2, labelled: not voted
                         "Answer: 5", "Answer: 6", "...")  # item 3, unlabelled: tie -> first class wins
    out = call(vote, completions, answer=[None] * 3 + ["4"] * 3 + [""] * 3, answer_type=["auto"] * 9,
               item_id=[1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert out == [1.0, 1.0, 0.0, None, None, None, 1.0, 0.0, 0.0]


def test_empo_within_each_group():
    empo = label_free("empo", num_generations=4)
    out = call(empo, as_trl("Answer: B", "Answer: (B)", "Answer: C", ""), answer=[None] * 4,
               answer_type=["auto"] * 4, item_id=[7] * 4)
    assert out == [0.5, 0.5, 0.25, 0.0]


def test_label_free_refuses_a_group_split_across_items():
    vote = label_free("majority_vote", num_generations=2)
    with pytest.raises(ValueError, match="mixes items"):
        call(vote, as_trl("a", "b"), answer=[None, None], answer_type=["auto"] * 2, item_id=[1, 2])
    with pytest.raises(ValueError, match="not a whole number of groups"):
        call(vote, as_trl("a", "b", "c"), answer=[None] * 3, answer_type=["auto"] * 3, item_id=[1, 1, 1])


def test_weighted_sum_matches_the_recipe_total():
    """What TRL computes (sum of weight x component, None skipped) equals rewards.py's total."""
    from trainer.rewards import pebr_perception_reward, pebr_reasoning_reward

    funcs, weights = reward_functions("pebr_perception", num_generations=2, clip=FixedClip([0.3]))
    columns = {"key_words": [["red", "circle"]], "images": [[red_square()]], "completion_ids": [[1] * 600],
               "answer": ["red"], "answer_type": ["auto"]}
    total = sum(w * call(f, as_trl(FULL), **columns)[0] for f, w in zip(funcs, weights))
    expected = pebr_perception_reward(FULL, key_words=["red", "circle"], image_text_similarity=0.3, n_tokens=600)
    assert total == pytest.approx(expected["total"])

    funcs, weights = reward_functions("pebr_reasoning", num_generations=2)
    columns = {"answer": ["red", "red"], "answer_type": ["auto"] * 2, "item_id": [1, 1]}
    values = [call(f, as_trl(FULL, NO_HEADERS), **columns) for f in funcs]
    totals = [sum(w * v[i] for w, v in zip(weights, values) if v[i] is not None) for i in range(2)]
    assert totals == [pebr_reasoning_reward(FULL, answer="red")["total"],
                      pebr_reasoning_reward(NO_HEADERS, answer="red")["total"]]
