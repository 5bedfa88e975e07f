"""Guess an item's answer type when the source does not say."""
from __future__ import annotations

import re

from lookfirst.pools.models import AnswerType

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$|^[-+]?\d+/\d+$", re.IGNORECASE)
_CHOICE = re.compile(r"^\(?[A-H]\)?\.?$")
_OPTIONS = re.compile(r"(^|\s|\()[A-D][.):]\s", re.MULTILINE)


def answer_type_guess(answer: str | None, question: str, declared: object = None) -> str:
    """
    >>> answer_type_guess("3.5", "How long?")
    'number'
    >>> answer_type_guess("B", "Which? A. red B. blue")
    'multiple_choice'
    >>> answer_type_guess("Yes", "Is there a cat?")
    'yes_no'
    >>> answer_type_guess(None, "Describe it.")
    'none'
    """
    if isinstance(declared, str) and declared in AnswerType.values:
        return declared
    if answer is None or answer.strip() == "":
        return AnswerType.NONE
    text = answer.strip()
    if text.lower() in {"yes", "no"}:
        return AnswerType.YES_NO
    if _NUMBER.match(text.replace(",", "")):
        return AnswerType.NUMBER
    if _CHOICE.match(text) and _OPTIONS.search(question):
        return AnswerType.MULTIPLE_CHOICE
    return AnswerType.FREE_TEXT
