from __future__ import annotations

import doctest
import random

import pytest

from lookfirst.snapshots import rules
from lookfirst.snapshots.rules import Row, eval_hash, plan


def ids(p: rules.Plan) -> dict[str, list[int]]:
    return {split: [item_id for item_id, _ in entries] for split, entries in p.splits.items()}


ROWS = [
    Row(1, "easy", 1.0), Row(2, "medium", 0.25), Row(3, "medium", 0.75, text_only=True), Row(4, "hard", 0.0),
    Row(5, "unscored"), Row(6, "easy", 1.0, excluded=True), Row(7, "medium", 0.5), Row(8, "easy", 1.0),
    Row(9, "medium", 0.875, text_only=True), Row(10, "medium", 0.5),
]


def test_pebr_two_stages_drop_hard_unscored_and_excluded():
    p = plan("pebr-2stage", ROWS, fraction=0)
    assert p.stages == ("perception", "reasoning")
    assert ids(p) == {"perception": [1, 8], "reasoning": [2, 3, 7, 9, 10], "eval": []}


def test_capcurriculum_three_stages_sorted_easy_to_hard():
    p = plan("capcurriculum-3stage", ROWS, fraction=0)
    assert p.stages == ("perception", "textual_reasoning", "visual_reasoning")
    # pass rate descending, ties by item id
    assert ids(p) == {"perception": [1, 8], "textual_reasoning": [9, 3], "visual_reasoning": [7, 10, 2], "eval": []}


def test_merged_keeps_what_the_staged_rules_keep():
    p = plan("merged", ROWS, fraction=0)
    assert ids(p) == {"merged": [1, 2, 3, 7, 8, 9, 10], "eval": []}


def test_eval_rows_leave_their_stage_and_remember_it():
    held = {r.item_id for r in ROWS if eval_hash(r.item_id, 3) < 0.5}
    p = plan("pebr-2stage", ROWS, seed=3, fraction=0.5)
    kept = {1, 2, 3, 7, 8, 9, 10}
    assert ids(p)["eval"] == sorted(held & kept)
    assert set(ids(p)["perception"] + ids(p)["reasoning"]) == kept - held
    assert dict(p.splits["eval"]) == {i: ("perception" if i in (1, 8) else "reasoning") for i in held & kept}


def test_same_input_same_split_in_any_order():
    rows = [Row(i, random.Random(i).choice(["easy", "medium", "hard"]), i % 9 / 8) for i in range(1, 2001)]
    first = plan("capcurriculum-3stage", rows, seed=7)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert plan("capcurriculum-3stage", shuffled, seed=7).splits == first.splits
    assert plan("capcurriculum-3stage", rows, seed=8).splits["eval"] != first.splits["eval"]


def test_adding_or_removing_items_moves_no_existing_item():
    rows = [Row(i, "medium", 0.5) for i in range(1, 5001)]
    before = ids(plan("pebr-2stage", rows))
    grown = ids(plan("pebr-2stage", rows + [Row(i, "medium", 0.5) for i in range(5001, 8001)]))
    shrunk = ids(plan("pebr-2stage", rows[::2]))
    for split in ("eval", "reasoning"):
        assert [i for i in grown[split] if i <= 5000] == before[split]
        assert shrunk[split] == [i for i in before[split] if i % 2 == 1]
    assert 0.09 < len(before["eval"]) / 5000 < 0.11  # about the default 10%


def test_text_only_marks_and_bad_arguments():
    assert rules.is_text_only(["x", "text-only"], None)
    assert rules.is_text_only([], {"text_only": True})
    assert rules.is_text_only([], {"capability": "Textual_Reasoning"})
    assert not rules.is_text_only([], {"text_only": "yes", "capability": "visual"})
    with pytest.raises(rules.RuleError, match="unknown rule"):
        plan("three-stage", ROWS)
    with pytest.raises(rules.RuleError, match="fraction"):
        plan("merged", ROWS, fraction=1.0)


def test_doctests():
    assert doctest.testmod(rules).failed == 0
