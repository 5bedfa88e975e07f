"""Stage rules: which snapshot items an export puts in which training stage, in which order.

Pure functions over light rows; no Django. Every rule first drops excluded items and items whose bucket is
neither Easy nor Medium (Hard is unused by both anchor recipes; unscored items have no difficulty yet), then:

- ``pebr-2stage`` (PeBR-R1): stages ``perception`` = Easy, ``reasoning`` = Medium; item-id order
  (the trainer shuffles).
- ``capcurriculum-3stage`` (From Seeing to Thinking): stages ``perception``, ``textual_reasoning``,
  ``visual_reasoning``, each sorted by pass rate descending (easy -> hard; ties by item id).
  LookFirst has no capability labels, so the mapping is ours, not the paper's data:
  perception = Easy; textual_reasoning = Medium items that are text-only (tag ``text-only``, or metadata
  ``text_only`` true, or metadata ``capability`` one of ``text``, ``textual``, ``text-only``,
  ``textual_reasoning``); visual_reasoning = the other Medium items. The paper's perception stage uses
  caption-solvable multiple-choice items and its textual stage text-only problems; tag items accordingly.
- ``merged``: one stage ``merged`` with every item the staged rules keep (Easy + Medium), item-id order:
  the matched-data baseline the staged recipes are compared against.

The held-out ``eval`` split takes the kept items whose ``eval_hash(item_id, seed)`` is below ``fraction``
and removes them from their stage (each eval row remembers it). The hash depends only on the item id and
the seed, so adding or removing other items never moves an item into or out of eval. Eval rows follow the
rule's order too. Each row's place is decided from the row alone (`route`), so an export streams the
snapshot once, in the rule's order (`ORDER`), and never holds the item list.

>>> rows = [Row(1, "easy", 1.0), Row(2, "medium", 0.25), Row(3, "medium", 0.75), Row(4, "hard", 0.0)]
>>> [(s, [r[0] for r in ids]) for s, ids in plan("capcurriculum-3stage", rows, fraction=0).splits.items()]
[('perception', [1]), ('textual_reasoning', []), ('visual_reasoning', [3, 2]), ('eval', [])]
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

EVAL = "eval"
RULES: dict[str, tuple[str, ...]] = {
    "pebr-2stage": ("perception", "reasoning"),
    "capcurriculum-3stage": ("perception", "textual_reasoning", "visual_reasoning"),
    "merged": ("merged",),
}
KEPT_BUCKETS = ("easy", "medium")
ORDER = {"pebr-2stage": "item_id", "capcurriculum-3stage": "pass_rate_desc", "merged": "item_id"}
TEXT_ONLY_TAG = "text-only"
TEXT_ONLY_CAPABILITIES = {"text", "textual", "text-only", "textual_reasoning"}


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Row:
    item_id: int
    bucket: str
    pass_rate: float | None = None
    excluded: bool = False
    text_only: bool = False


@dataclass
class Plan:
    rule: str
    stages: tuple[str, ...]
    # split -> [(item_id, stage)] in training order; eval rows keep the stage they were taken from
    splits: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(rows) for rows in self.splits.values())


def is_text_only(tags: Sequence[str] | None, metadata: Mapping | None) -> bool:
    """
    >>> is_text_only(["text-only"], {}), is_text_only([], {"capability": "textual"}), is_text_only([], None)
    (True, True, False)
    """
    if tags and TEXT_ONLY_TAG in tags:
        return True
    if not isinstance(metadata, Mapping):
        return False
    return metadata.get("text_only") is True or str(metadata.get("capability", "")).lower() in TEXT_ONLY_CAPABILITIES


def eval_hash(item_id: int, seed: int) -> float:
    """A uniform number in [0, 1) from sha256("<seed>:<item_id>").

    >>> round(eval_hash(1, 0), 6), eval_hash(1, 0) == eval_hash(1, 1)
    (0.933888, False)
    """
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stage_of(rule: str, row: Row) -> str | None:
    """The stage `row` trains in under `rule`, or None when the rule drops it."""
    if rule not in RULES:
        raise RuleError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    if row.excluded or row.bucket not in KEPT_BUCKETS:
        return None
    if rule == "merged":
        return "merged"
    if row.bucket == "easy":
        return "perception"
    if rule == "pebr-2stage":
        return "reasoning"
    return "textual_reasoning" if row.text_only else "visual_reasoning"


def route(rule: str, row: Row, *, seed: int = 0, fraction: float = 0.1) -> tuple[str, str] | None:
    """(split, stage) of `row`: split is the stage, or "eval" for held-out rows; None when dropped."""
    stage = stage_of(rule, row)
    if stage is None:
        return None
    return (EVAL if eval_hash(row.item_id, seed) < fraction else stage), stage


def sort_key(rule: str, row: Row) -> tuple:
    """The rule's order: item id, or pass rate descending (unscored last) then item id."""
    if ORDER[rule] == "pass_rate_desc":
        return (-(row.pass_rate if row.pass_rate is not None else -1.0), row.item_id)
    return (row.item_id,)


def check(rule: str, fraction: float) -> None:
    if rule not in RULES:
        raise RuleError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    if not 0 <= fraction < 1:
        raise RuleError("eval fraction must be in [0, 1)")


def plan(rule: str, rows: Iterable[Row], *, seed: int = 0, fraction: float = 0.1) -> Plan:
    """Every split of `rule` over `rows`, in order: what an export of these rows writes."""
    check(rule, fraction)
    keyed: dict[str, list[tuple[tuple, int, str]]] = {name: [] for name in (*RULES[rule], EVAL)}
    for row in rows:
        placed = route(rule, row, seed=seed, fraction=fraction)
        if placed is not None:
            keyed[placed[0]].append((sort_key(rule, row), row.item_id, placed[1]))
    out = Plan(rule=rule, stages=RULES[rule])
    for name, entries in keyed.items():
        entries.sort(key=lambda entry: entry[0])
        out.splits[name] = [(item_id, stage) for _, item_id, stage in entries]
    return out
