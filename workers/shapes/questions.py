"""Question templates over shapes scenes, their exact answers, and the pool's item mix.

Each template takes an rng and returns (scenes, question, answer, answer_type), or None when the
drawn scene does not support it (e.g. no shape kind occurs exactly once); the caller then draws a
new scene. Answers are computed from the scene model, never from pixels.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from workers.shapes.world import COLOURS, KINDS, PLURALS, SIDES, Scene, render, sample_scene

IMAGE_TOKEN = "<image>"
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

# Pool composition. A uniform mix of question types left the Hard bucket right at 15% for the
# small built-in VLM (stack notes); weighting towards multi-step questions cleared it, so reasoning
# templates (multi-image included) carry 60% of the mass. Multi-image items are 3%.
QTYPE_WEIGHTS: dict[str, float] = {
    "colour_of": 0.10,
    "colour_of_mc": 0.06,
    "count_kind": 0.09,
    "presence": 0.08,
    "total_count": 0.07,
    "more_than": 0.17,
    "total_sides": 0.22,
    "most_colour": 0.18,
    "multi_count": 0.03,
}
STAGES: dict[str, str] = {
    "colour_of": "perception",
    "colour_of_mc": "perception",
    "count_kind": "perception",
    "presence": "perception",
    "total_count": "perception",
    "more_than": "reasoning",
    "total_sides": "reasoning",
    "most_colour": "reasoning",
    "multi_count": "reasoning",
}
NO_ANSWER_SHARE = 0.08  # label-free items: answer None, answer_type "none"
EXACT_DUPLICATE_SHARE = 0.03  # same image bytes and question as an earlier item
NEAR_DUPLICATE_SHARE = 0.05  # same scene and question as an earlier item, re-rendered with jitter


@dataclass
class ShapesItem:
    uid: str
    question: str
    answer: str | None
    answer_type: str
    qtype: str
    stage: str
    key_words: list[str]
    description: str
    scenes: list[Scene]
    duplicate_of: str | None
    near_duplicate_of: str | None


Drawn = tuple[list[Scene], str, str, str]


def _count(scene: Scene, kind: str) -> int:
    return sum(shape.kind == kind for shape in scene.shapes)


def _colour_of(rng: random.Random) -> tuple[Scene, str, str] | None:
    scene = sample_scene(rng)
    single = [kind for kind in KINDS if _count(scene, kind) == 1]
    if not single:
        return None
    kind = rng.choice(single)
    colour = next(shape.colour for shape in scene.shapes if shape.kind == kind)
    return scene, f"What colour is the {kind}?", colour


def q_colour_of(rng: random.Random) -> Drawn | None:
    drawn = _colour_of(rng)
    if drawn is None:
        return None
    scene, text, colour = drawn
    return [scene], text, colour, "free_text"


def q_colour_of_mc(rng: random.Random) -> Drawn | None:
    drawn = _colour_of(rng)
    if drawn is None:
        return None
    scene, text, colour = drawn
    options = [colour, *rng.sample([c for c in COLOURS if c != colour], 3)]
    rng.shuffle(options)
    listed = " ".join(f"{letter}. {option}" for letter, option in zip("ABCD", options))
    return [scene], f"{text}\nOptions: {listed}", "ABCD"[options.index(colour)], "multiple_choice"


def q_count_kind(rng: random.Random) -> Drawn:
    scene = sample_scene(rng)
    present = sorted({shape.kind for shape in scene.shapes}, key=KINDS.index)
    kind = rng.choice(present) if rng.random() < 0.85 else rng.choice(KINDS)
    return [scene], f"How many {PLURALS[kind]} are there?", str(_count(scene, kind)), "number"


def q_presence(rng: random.Random) -> Drawn | None:
    scene = sample_scene(rng)
    present = sorted({(shape.colour, shape.kind) for shape in scene.shapes})
    if rng.random() < 0.5:
        colour, kind = rng.choice(present)
        answer = "yes"
    else:
        absent = [(c, k) for c in COLOURS for k in KINDS if (c, k) not in present]
        # Half of the "no" questions are near misses: a present kind in another colour.
        near = [(c, k) for c, k in absent if any(k == pk for _, pk in present)]
        colour, kind = rng.choice(near if near and rng.random() < 0.5 else absent)
        answer = "no"
    return [scene], f"Is there a {colour} {kind}?", answer, "yes_no"


def q_total_count(rng: random.Random) -> Drawn:
    scene = sample_scene(rng)
    return [scene], "How many shapes are there?", str(len(scene.shapes)), "number"


def q_more_than(rng: random.Random) -> Drawn | None:
    scene = sample_scene(rng, n_shapes=rng.randint(2, 6))
    counts = {kind: _count(scene, kind) for kind in KINDS}
    present = [kind for kind in KINDS if counts[kind] > 0]
    both_present = [(a, b) for a in present for b in present if a != b and counts[a] >= counts[b]]
    if both_present and rng.random() < 0.75:
        more, fewer = rng.choice(both_present)
    else:
        more = rng.choice(present)
        fewer = rng.choice([kind for kind in KINDS if counts[kind] == 0] or [k for k in KINDS if k != more])
        if counts[fewer] > counts[more]:
            return None
    text = f"How many more {PLURALS[more]} than {PLURALS[fewer]} are there?"
    return [scene], text, str(counts[more] - counts[fewer]), "number"


def q_total_sides(rng: random.Random) -> Drawn:
    scene = sample_scene(rng, n_shapes=rng.randint(2, 6))
    total = sum(SIDES[shape.kind] for shape in scene.shapes)
    return [scene], "What is the total number of sides of all the shapes?", str(total), "number"


def q_most_colour(rng: random.Random) -> Drawn | None:
    scene = sample_scene(rng, n_shapes=rng.randint(2, 6))
    ranked = Counter(shape.colour for shape in scene.shapes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None  # only ask when the most frequent colour is unique
    colour, n = ranked[0]
    return [scene], "Which colour occurs most, and how many shapes have it?", f"{colour}, {n}", "free_text"


def q_multi_count(rng: random.Random) -> Drawn | None:
    scenes = [sample_scene(rng), sample_scene(rng)]
    present = sorted({shape.kind for scene in scenes for shape in scene.shapes}, key=KINDS.index)
    kind = rng.choice(present)
    total = sum(_count(scene, kind) for scene in scenes)
    return scenes, f"How many {PLURALS[kind]} are there in the two images together?", str(total), "number"


TEMPLATES: dict[str, Callable[[random.Random], Drawn | None]] = {
    "colour_of": q_colour_of,
    "colour_of_mc": q_colour_of_mc,
    "count_kind": q_count_kind,
    "presence": q_presence,
    "total_count": q_total_count,
    "more_than": q_more_than,
    "total_sides": q_total_sides,
    "most_colour": q_most_colour,
    "multi_count": q_multi_count,
}


def key_words(scenes: list[Scene]) -> list[str]:
    """Colours and kinds a correct description must mention, in order of first appearance."""
    words: list[str] = []
    for scene in scenes:
        for shape in scene.shapes:
            for word in (shape.colour, shape.kind):
                if word not in words:
                    words.append(word)
    return words


def describe(scene: Scene) -> str:
    """Ground-truth caption, e.g. `A large red triangle and two small blue circles on a white background.`"""
    groups = Counter((shape.size, shape.colour, shape.kind) for shape in scene.shapes)
    order = list(dict.fromkeys((shape.size, shape.colour, shape.kind) for shape in scene.shapes))
    phrases = [
        f"a {size} {colour} {kind}" if groups[(size, colour, kind)] == 1
        else f"{NUMBER_WORDS[groups[(size, colour, kind)]]} {size} {colour} {PLURALS[kind]}"
        for size, colour, kind in order
    ]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return listed[0].upper() + listed[1:] + " on a white background."


def describe_all(scenes: list[Scene]) -> str:
    if len(scenes) == 1:
        return describe(scenes[0])
    return " ".join(f"Image {i + 1}: {describe(scene)}" for i, scene in enumerate(scenes))


def _rng(seed: int, index: int, stream: str) -> random.Random:
    digest = hashlib.sha256(f"shapes:{seed}:{index}:{stream}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# Pool shares come from Weyl sequences (frac(offset + index * alpha)) rather than independent coin
# flips: item i still depends only on (seed, i), but any run of n items hits every share to within
# a few items instead of a binomial spread (8% of 300 items would otherwise range over 5-11%).
# The three multipliers are rationally independent, so the three draws are jointly uniform.
_ALPHA = {"qtype": 0.6180339887498949, "answer": 0.4142135623730951, "role": 0.7320508075688772}


def _weyl(seed: int, index: int, stream: str) -> float:
    digest = hashlib.sha256(f"shapes:{seed}:weyl:{stream}".encode()).digest()
    offset = int.from_bytes(digest[:8], "big") / 2**64
    return (offset + index * _ALPHA[stream]) % 1.0


def _pick_qtype(u: float) -> str:
    total = sum(QTYPE_WEIGHTS.values())
    cumulative = 0.0
    for qtype, weight in QTYPE_WEIGHTS.items():
        cumulative += weight / total
        if u < cumulative:
            return qtype
    return qtype


def _base(seed: int, index: int) -> tuple[str, list[Scene], str, str | None, str]:
    """The fresh content of item `index`: (qtype, scenes, question, answer, answer_type)."""
    rng = _rng(seed, index, "base")
    qtype = _pick_qtype(_weyl(seed, index, "qtype"))
    drawn = None
    while drawn is None:
        drawn = TEMPLATES[qtype](rng)
    scenes, text, answer, answer_type = drawn
    question = IMAGE_TOKEN * len(scenes) + text
    if _weyl(seed, index, "answer") < NO_ANSWER_SHARE:
        return qtype, scenes, question, None, "none"
    return qtype, scenes, question, answer, answer_type


def _is_fresh(seed: int, index: int) -> bool:
    return index == 0 or _weyl(seed, index, "role") >= EXACT_DUPLICATE_SHARE + NEAR_DUPLICATE_SHARE


def _role(seed: int, index: int) -> tuple[str, int]:
    """("fresh", index) or ("exact" | "near", index of an earlier fresh item)."""
    if _is_fresh(seed, index):
        return "fresh", index
    u = _weyl(seed, index, "role")
    original = _rng(seed, index, "role").randrange(index)
    while not _is_fresh(seed, original):
        original -= 1  # terminates: item 0 is always fresh
    return ("exact" if u < EXACT_DUPLICATE_SHARE else "near"), original


def uid_for(seed: int, index: int) -> str:
    return f"shapes-{seed}-{index:06d}"


def make_item(seed: int, index: int) -> tuple[ShapesItem, list[Image.Image]]:
    """Item `index` of the pool for `seed`; depends only on (seed, index)."""
    role, original = _role(seed, index)
    qtype, scenes, question, answer, answer_type = _base(seed, original)
    if role == "near":
        jitter = _rng(seed, index, "jitter")
        images = [render(scene, jitter=jitter) for scene in scenes]
    else:
        images = [render(scene) for scene in scenes]
    item = ShapesItem(
        uid=uid_for(seed, index),
        question=question,
        answer=answer,
        answer_type=answer_type,
        qtype=qtype,
        stage=STAGES[qtype],
        key_words=key_words(scenes),
        description=describe_all(scenes),
        scenes=scenes,
        duplicate_of=uid_for(seed, original) if role == "exact" else None,
        near_duplicate_of=uid_for(seed, original) if role == "near" else None,
    )
    return item, images


def generate_items(n: int, seed: int) -> Iterator[tuple[ShapesItem, list[Image.Image]]]:
    """The first `n` items of the pool for `seed`, with their rendered images."""
    for index in range(n):
        yield make_item(seed, index)
