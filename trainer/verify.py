r"""Answer extraction and grading, shared by the scoring workers and the trainer.

One verifier decides both the difficulty bucket of an item (N sampled answers graded against the
ground truth) and the accuracy reward during GRPO, so the two can never disagree.

Everything here is pure and never raises on odd input: a bad answer grades False. Math equivalence
uses math-verify with its signal-based timeouts switched off (``parsing_timeout=None``,
``timeout_seconds=None``): ``signal.alarm`` only works in the main thread, so the default would fail
inside Celery threads or data-loader workers. math-verify logs one warning per process about this.
Without a timeout, power towers and huge factorials are refused before comparison (they would never
return); anything else pathological is bounded only by the caller's task time limit.

>>> extract_answer("### Step 1: count.\n### The final answer is: **3**.")
'3'
>>> grade("0.50", "1/2")
True
>>> majority_vote(["B", "(B)", "C", None])
('B', 0.5)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

FINAL_ANSWER_HEADER = "### The final answer is:"
ANSWER_TYPES = ("auto", "multiple_choice", "yes_no", "number", "free_text")

_ARTICLES = frozenset({"a", "an", "the"})
_YES_NO = {"yes": True, "true": True, "no": False, "false": False}
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(r"\banswer\s*(?:is\b\s*:?|:)\s*(?P<answer>[^\s:].*)$", re.IGNORECASE)
_BARE_HEADER = re.compile(r"^\s*###[^:]*:\s*$")
_WRAPPING_COMMANDS = ("boxed", "fbox", "text", "textbf", "mathrm", "mathbf")

# A number as written in answers: 3, -2.5, .5, 3,000 (thousands groups), 1e-3.
_NUM = r"[+-]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(rf"^(?P<num>{_NUM})\s*(?P<pct>%)?(?:\s*[A-Za-z°²³/]+\.?){{0,2}}$")
_FRACTION = re.compile(rf"^(?P<num>{_NUM})\s*/\s*(?P<den>{_NUM})$")
_LATEX_FRACTION = re.compile(rf"^(?P<sign>[+-]?)\\[dt]?frac\{{(?P<num>{_NUM})\}}\{{(?P<den>{_NUM})\}}$")

_CHOICE_PATTERNS = (
    re.compile(r"^\(?([A-H])\)?$", re.IGNORECASE),  # B, (B)
    re.compile(r"^\(?([A-H])[.):]\s*\S.*$", re.IGNORECASE | re.DOTALL),  # B. blue, B) blue, (B). blue
    re.compile(r"^\(([A-H])\)\s*\S.*$", re.IGNORECASE | re.DOTALL),  # (B) blue
    re.compile(r"^(?:option|choice)\s*:?\s*\(?([A-H])\)?(?:[.):]?\s.*)?$", re.IGNORECASE | re.DOTALL),  # Option B
)
# Stricter forms used only to guess that a ground truth is a multiple-choice letter.
_CHOICE_TRUTH = re.compile(r"^(?:(?i:option|choice)\s*)?\(?([A-H])\)?[.)]?$")
# Guards for math-verify, which runs without a timeout (see _math_equal).
_MAX_MATH_CHARS = 300
_MAX_EXPONENT = 1e6
_MAX_FACTORIAL_ARG = 1e5
_MATH_WORDS = re.compile(r"\\[A-Za-z]+|\b(?:sin|cos|tan|cot|sec|csc|log|ln|exp|sqrt|frac|pi|deg)\b")


# ---------------------------------------------------------------- extraction


def extract_answer(response: str) -> str | None:
    r"""Return the final answer written in a model response, or None when there is none.

    Preference order: the text after the last "### The final answer is:" (PeBR layout, up to the next
    "###" header), the content of the last ``\boxed{...}`` (nested braces allowed), the last
    ``<answer>...</answer>`` tag, the last "Answer: X" / "the answer is X" line, the last non-empty line.
    Whitespace, trailing periods and surrounding ``$``, ``**``, ``\boxed{}`` or ``\text{}`` are stripped.

    >>> extract_answer("### Rationales: ...\n### The final answer is: B\n")
    'B'
    >>> extract_answer(r"so $x = \boxed{\frac{1}{2}}$.")
    '\\frac{1}{2}'
    >>> extract_answer("<think>hmm</think><answer> 42 </answer>")
    '42'
    >>> extract_answer("Counting the apples gives three.\nThe answer is 3.")
    '3'
    >>> extract_answer("red\n\n") , extract_answer("   ")
    ('red', None)
    """
    if not isinstance(response, str) or not response.strip():
        return None
    for find in (_after_final_header, last_boxed, _last_answer_tag, _last_answer_line, _last_line):
        try:
            found = find(response)
        except Exception:  # a malformed response must not stop the others
            found = None
        if found is not None:
            cleaned = _clean(found)
            if cleaned:
                return cleaned
    return None


def _after_final_header(response: str) -> str | None:
    start = response.rfind(FINAL_ANSWER_HEADER)
    if start < 0:
        return None
    section = response[start + len(FINAL_ANSWER_HEADER):]
    end = section.find("###")
    if end >= 0:
        section = section[:end]
    # A boxed answer or an "answer is" line inside the section is more precise than the whole section.
    return last_boxed(section) or _last_answer_line(section) or " ".join(section.split())


def last_boxed(text: str, commands: tuple[str, ...] = ("boxed", "fbox")) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``) whose braces close, or None.

    One pass over the text, so a response full of unclosed boxes stays linear.

    >>> last_boxed(r"\boxed{1} then \boxed{\frac{1}{2}} and \boxed{oops"), last_boxed("none")
    ('\\frac{1}{2}', None)
    """
    pattern = re.compile(r"\\(?:" + "|".join(map(re.escape, commands)) + r")\s*\{")
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    closing = _closing_braces(text)
    for match in reversed(matches):
        open_at = match.end() - 1
        if open_at in closing:
            return text[open_at + 1:closing[open_at]]
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """Map each "{" that closes to the index of its "}"."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, char in enumerate(text):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def _balanced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at text[open_at], or None when it never closes."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None


def _last_answer_tag(text: str) -> str | None:
    tags = _ANSWER_TAG.findall(text)
    return tags[-1] if tags else None


def _last_answer_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        match = _ANSWER_LINE.search(line.replace("**", ""))
        if match:
            return match.group("answer")
    return None


def _last_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip() and not _BARE_HEADER.match(line)]
    return lines[-1] if lines else None


def _clean(text: str) -> str:
    """Strip whitespace, trailing periods and wrapping markup until nothing changes (16 layers at most)."""
    previous = None
    for _ in range(16):
        if text == previous:
            break
        previous = text
        text = text.strip().rstrip(".").strip()
        for left, right in (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"), ("**", "**")):
            if len(text) >= len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text = text[len(left):len(text) - len(right)]
                break
        else:
            text = _unwrap_command(text)
    return text


def _unwrap_command(text: str) -> str:
    for name in _WRAPPING_COMMANDS:
        prefix = "\\" + name + "{"
        if text.startswith(prefix) and text.endswith("}") and _balanced(text, len(prefix) - 1) == text[len(prefix):-1]:
            return text[len(prefix):-1]
    return text


# ---------------------------------------------------------------- normalisation and grading


def normalize(text: str) -> str:
    r"""Canonical form for free-text comparison.

    Unicode NFKC, markup stripped (``$``, ``**``, ``\text{}``), lowercase, punctuation replaced by
    spaces (so "3.5" never equals "35"), the articles a/an/the dropped, spaces collapsed.

    >>> normalize("  The **Red** car.  ")
    'red car'
    >>> normalize(r"$\text{Blue}$"), normalize("red,3")
    ('blue', 'red 3')
    """
    if not isinstance(text, str):
        return ""
    text = _clean(unicodedata.normalize("NFKC", text))
    text = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}", r"\1", text).lower()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(token for token in text.split() if token not in _ARTICLES)


def infer_answer_type(truth: str) -> str:
    """Guess the answer type from a ground truth: what ``grade(..., answer_type="auto")`` uses.

    >>> [infer_answer_type(t) for t in ["B", "(C)", "Yes", "3,000", "1/2", "red, 3", "a cat"]]
    ['multiple_choice', 'multiple_choice', 'yes_no', 'number', 'number', 'free_text', 'free_text']
    """
    text = _clean(truth) if isinstance(truth, str) else ""
    if _CHOICE_TRUTH.match(text):
        return "multiple_choice"
    if normalize(text) in _YES_NO:
        return "yes_no"
    if _parse_number(text) is not None:
        return "number"
    return "free_text"


def grade(predicted: str | None, truth: str, answer_type: str = "auto") -> bool:
    r"""True when the predicted answer matches the ground truth; never raises.

    answer_type is one of "multiple_choice" (letters A-H; "B", "(B)", "B.", "B. blue", "Option B"),
    "yes_no" (yes/no/true/false), "number" (ints, decimals, fractions, "3,000", percentages, trailing
    units ignored; relative tolerance 1e-6, math-verify for LaTeX), "free_text" (``normalize`` equality,
    or math-verify equivalence when both sides look like math) or "auto" (inferred from the truth with
    ``infer_answer_type``; an unknown type also means "auto"). A truth with several comma- or
    semicolon-separated parts ("red, 3") is compared part by part when the prediction has as many.

    >>> grade("B. blue", "B"), grade("Yes.", "yes"), grade("3,000", "3000"), grade("Red,3", "red, 3")
    (True, True, True, True)
    >>> grade(r"\frac{1}{2}", "0.5"), grade("50%", "0.5", "number"), grade("C", "B"), grade(None, "B")
    (True, True, False, False)
    """
    if predicted is None or not isinstance(truth, str) or not isinstance(predicted, str):
        return False
    try:
        return _grade(predicted, truth, answer_type if answer_type in ANSWER_TYPES else "auto")
    except Exception:
        return False


def _grade(predicted: str, truth: str, answer_type: str) -> bool:
    # Voting compares the same short answers many times; long strings are not worth keeping.
    if len(predicted) + len(truth) <= 256:
        return _grade_cached(predicted, truth, answer_type)
    return _grade_uncached(predicted, truth, answer_type)


def _grade_uncached(predicted: str, truth: str, answer_type: str) -> bool:
    predicted, truth = _clean(predicted), _clean(truth)
    if not predicted or not truth:
        return False
    kind = infer_answer_type(truth) if answer_type == "auto" else answer_type
    if kind == "multiple_choice":
        truth_letter = _choice_letter(truth)
        if truth_letter is not None:
            return _choice_letter(predicted) == truth_letter
        kind = "free_text"
    if kind == "yes_no":
        truth_value = _yes_no(truth)
        if truth_value is not None:
            return _yes_no(predicted) == truth_value
        kind = "free_text"
    if kind != "number" and normalize(truth) and normalize(predicted) == normalize(truth):
        return True
    parts = _split_list(truth)
    if len(parts) > 1:  # "red, 3": part by part, in order
        predicted_parts = _split_list(predicted)
        element_type = "number" if kind == "number" else "auto"
        return len(predicted_parts) == len(parts) and all(
            _grade(p, t, element_type) for p, t in zip(predicted_parts, parts))
    if kind == "number":
        truth_values, predicted_values = _parse_number(truth), _parse_number(predicted)
        if truth_values is not None and predicted_values is not None:
            return any(math.isclose(p, t, rel_tol=1e-6) for p in predicted_values for t in truth_values)
    return _looks_like_math(truth) and _looks_like_math(predicted) and _math_equal(predicted, truth)


_grade_cached = lru_cache(maxsize=8192)(_grade_uncached)


def _choice_letter(text: str) -> str | None:
    for pattern in _CHOICE_PATTERNS:
        match = pattern.match(text.strip())
        if match:
            return match.group(1).upper()
    return None


def _yes_no(text: str) -> bool | None:
    tokens = normalize(text).split()
    if not tokens:
        return None
    return _YES_NO.get(tokens[0])  # "Yes, it is." counts as yes


def _split_list(text: str) -> list[str]:
    """Split on top-level commas and semicolons; thousands separators and brackets stay whole."""
    parts: list[str] = []
    depth = start = 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and (char == ";" or (char == "," and not _is_thousands_comma(text, i))):
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _is_thousands_comma(text: str, i: int) -> bool:
    return bool(i > 0 and text[i - 1].isdigit() and re.match(r",\d{3}(?!\d)", text[i:]))


def _parse_number(text: str) -> list[float] | None:
    """Candidate values of a numeric answer (a percentage gives both 50 and 0.5), or None."""
    text = re.sub(r"\\[,!; ]|\\%|\^\s*\{?\\circ\}?|\\circ", lambda m: "%" if m.group() == "\\%" else "", text)
    text = text.replace("−", "-").strip()
    for pattern in (_FRACTION, _LATEX_FRACTION):
        match = pattern.match(text)
        if match and _has_digit(match.group("num")) and _has_digit(match.group("den")):
            denominator = _to_float(match.group("den"))
            if denominator == 0:
                return None
            sign = -1.0 if match.groupdict().get("sign") == "-" else 1.0
            return [sign * _to_float(match.group("num")) / denominator]
    match = _NUMBER.match(text)
    if not match or not _has_digit(match.group("num")):
        return None
    value = _to_float(match.group("num"))
    return [value, value / 100] if match.group("pct") else [value]


def _has_digit(text: str) -> bool:
    return any(char.isdigit() for char in text)


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _looks_like_math(text: str) -> bool:
    """A digit or LaTeX command, and no word of three letters or more besides math names."""
    if not re.search(r"\d|\\[A-Za-z]+", text):
        return False
    text = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}", r" \1 ", text)
    return not re.search(r"[A-Za-z]{3,}", _MATH_WORDS.sub(" ", text))


def _math_equal(predicted: str, truth: str) -> bool:
    """math-verify equivalence with its timeouts off (signal.alarm breaks in threads); False on error.

    Without a timeout, a power tower or a huge factorial ("10^{10^{10}}", "(10^{100})!") would make
    the comparison run for ever, so such expressions are refused before math-verify compares them.
    """
    if len(predicted) > _MAX_MATH_CHARS or len(truth) > _MAX_MATH_CHARS:
        return False
    try:
        from math_verify import parse, verify

        gold = _math_parse(parse, truth)
        target = _math_parse(parse, predicted)
        if not gold or not target or not all(_tame(expr) for expr in [*gold, *target]):
            return False
        return bool(verify(gold, target, timeout_seconds=None))
    except Exception:
        return False


def _math_parse(parse: Callable[..., list[Any]], text: str) -> list[Any]:
    wrapped = text if "$" in text else f"${text}$"
    return parse(wrapped, parsing_timeout=None) or parse(text, parsing_timeout=None)


def _tame(expr: object) -> bool:
    """No numeric exponent above 1e6 and no factorial-like of a number above 1e5 (checked bottom-up)."""
    import sympy

    if isinstance(expr, str) or not isinstance(expr, sympy.Basic):
        return True
    try:
        for node in sympy.postorder_traversal(expr):
            if isinstance(node, sympy.Pow) and node.exp.is_number:
                if not _below(node.exp, _MAX_EXPONENT):
                    return False
            elif isinstance(node, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma,
                                   sympy.binomial)):
                if any(arg.is_number and not _below(arg, _MAX_FACTORIAL_ARG) for arg in node.args):
                    return False
        return True
    except Exception:
        return False


def _below(number: Any, limit: float) -> bool:
    value = complex(number.evalf(15))
    return abs(value) <= limit


# ---------------------------------------------------------------- label-free voting


def equivalence_classes(extracted: list[str | None], answer_type: str = "auto") -> list[int]:
    """Class id per answer: equivalent answers (``grade`` either way round) share an id; None gets -1.

    Ids are numbered 0, 1, ... in order of first occurrence; each answer joins the first class whose
    first member it matches.

    >>> equivalence_classes(["B", "(B)", None, "C", "b. blue"])
    [0, 0, -1, 1, 0]
    >>> equivalence_classes(["1/2", "0.5", "2"], "number")
    [0, 0, 1]
    """
    representatives: list[str] = []
    ids: list[int] = []
    for answer in extracted:
        if answer is None or not isinstance(answer, str) or not _clean(answer):
            ids.append(-1)
            continue
        for class_id, representative in enumerate(representatives):
            if _equivalent(answer, representative, answer_type):
                ids.append(class_id)
                break
        else:
            representatives.append(answer)
            ids.append(len(representatives) - 1)
    return ids


def _equivalent(a: str, b: str, answer_type: str) -> bool:
    return _clean(a) == _clean(b) or grade(a, b, answer_type) or grade(b, a, answer_type)


def majority_vote(extracted: list[str | None], answer_type: str = "auto") -> tuple[str | None, float]:
    """The most common answer up to equivalence, and its agreement.

    agreement = size of the winning class / len(extracted): None answers count in the denominator, so
    a group where most samples gave no answer has low agreement. The answer returned is the first
    member of the winning class; ties go to the class that appears first. No answers: (None, 0.0).

    >>> majority_vote(["3", "three", "3.0", None])
    ('3', 0.5)
    >>> majority_vote(["A", "B"]), majority_vote([None, None]), majority_vote([])
    (('A', 0.5), (None, 0.0), (None, 0.0))
    """
    ids = equivalence_classes(extracted, answer_type)
    sizes = Counter(class_id for class_id in ids if class_id >= 0)
    if not sizes:
        return None, 0.0
    winner = min(sizes, key=lambda class_id: (-sizes[class_id], class_id))
    answer = extracted[ids.index(winner)]
    return (_clean(answer) if answer is not None else None), sizes[winner] / len(extracted)
