"""The built-in models `lookfirst:shapes-vlm` and `lookfirst:shapes-clip`, trained here on CPU.

Both learn the shapes world from `workers.shapes` in minutes on 2 cores (random init, fp32), so the
product and its demo run with no download. Each build writes into a temporary folder that is
renamed into place when complete, so a folder holding `BUILD_INFO` is always a finished model;
a second call returns it without training, unless the recipe constants saved in `BUILD_INFO`
differ from today's (`is_built`): then it is trained again.

    build_shapes_vlm(folder)   Qwen2.5-VL architecture, 3.2 M params, 1000 steps or 400 s of training
    build_shapes_clip(folder)  open_clip ViT, 7.7 M params (6.3 M of them token embeddings), 400 steps or 150 s
    report(vlm_folder, clip_folder)  the acceptance figures: difficulty buckets and CLIP AUC

The VLM answers in PeBR-R1's layout; answers are extracted after "### The final answer is:", and
the description's words vary from sample to sample, so keyword and CLIP rewards vary:

    ### Image Description: A large red triangle and a small blue circle on a white background.
    ### Rationales: Find the triangle.
    ### Step 1: Read the colour of the triangle.
    ### The final answer is: red

A share of its answers (VLM_OFF_LAYOUT_SHARE of the targets it was trained on) skips the two middle
sections, so the format reward varies too, within the 8 samples of most items:

    ### Image Description: A large red triangle and a small blue circle on a white background.
    ### The final answer is: red

Its logits are scaled by VLM_LOGIT_SCALE before saving (see there): sampling it at PeBR's
temperature 1.2 behaves like sampling the trained weights at 0.12.

Training uses its own random streams (`random.Random(seed)` through the question templates), never
`generate_items`, so any `generate_items` pool is held out.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.shapes.questions import NUMBER_WORDS, PLURALS, QTYPE_WEIGHTS, TEMPLATES, describe
from workers.shapes.world import COLOURS, KINDS, Scene, render, sample_scene

Progress = Callable[[float, str], None]

BUILD_INFO = "lookfirst_builtin.json"  # written last: its presence marks a finished build
ANSWER_HEADER = "### The final answer is:"
HEADERS = ("### Image Description:", "### Rationales:", "### Step 1:", ANSWER_HEADER)

# ---- VLM recipe (stack notes, "Small built-in models trained on these CPUs") -------------------
VLM_STEPS = 1000  # on idle 2 cores about 330 s (0.33 s a step); buckets met from about 600 steps:
# Easy / Medium / Hard 10 / 40 / 50% after 350 steps, 22 / 34 / 44% after 639, 25 / 41 / 34% after 1247
# (all targets in the full layout). With VLM_OFF_LAYOUT_SHARE: Easy 17.3% after 762 steps, 8% after
# 494 (the biased 0.47 mix), so Easy's margin over 15% is thin when a loaded machine cuts the steps.
VLM_SECONDS = 400.0  # cap on loaded cores: with the CLIP's 150 s and ~15 s of setup and saving, both
# build in under 9.5 minutes whatever the load (800 steps fitted in 420 s on cores shared with a trainer)
VLM_BATCH = 16  # twice the updates of batch 32 for the same tokens: at matched tokens (600 x 16 vs
# 300 x 32) answer accuracy rose from 0.23 to 0.31; lr 1e-3 stayed stable
VLM_BUCKETS = 4  # batches drawn at once and sorted by length (less padding)
VLM_LR = 1e-3  # 2e-3 after the warm-up collapsed the model in the measured runs; 1e-3 was stable
VLM_WARMUP_STEPS = 30  # linear lr ramp (see `_lr_factor`)
VLM_COLOUR_PHASE = 0.12  # share of the budget on single-shape colour questions only: a uniform mix
# from step 0 learned nothing in 700 steps; reading one colour first grounds the image tokens.
VLM_SINGLE_SHARE = 0.10  # single-shape colour questions kept in the mix afterwards
# Share of target responses in the short layout (see `short_layout`): no "### Rationales:" and
# "### Step 1:" sections, the answer still after "### The final answer is:". With every target in
# the full layout 99.6% of samples kept all four headers, so PeBR's format reward was almost constant
# and gave GRPO no signal. The share sits close to one half because of VLM_LOGIT_SCALE: sampling at
# T 1.2 raises the learned probability of each layout to the power 10 / 1.2 = 8.3 before
# normalising, so a 25% share would leave (0.25 / 0.75) ** 8.3 = 1e-4 of samples short, and every
# point of share moves the sampled format rate by several. Measured on the report pool (N 8, T 1.2):
# 0.47, shortened before bucketing (biased, see `training_batches`; learned full-layout probability
# 0.432, per-item sd 0.037): 16.7% of samples in the full layout, 57.6% of items with both layouts.
# 0.45 (29 of each 64 drawn), shortened after bucketing, 762 steps: 84.0% in the full layout, 68.4%
# of items with both layouts, Easy / Medium / Hard 17.3 / 39.2 / 43.5%, every answer extractable.
# Short answers were no worse (42% correct vs 33% for full ones on 200 held-out items, 16 samples).
VLM_OFF_LAYOUT_SHARE = 0.45
VLM_CONTENT_WEIGHT = 10.0  # loss weight of tokens that carry image facts or answers (see `content_token_ids`)
VLM_VOCAB = 600  # byte-level BPE: every shapes-world word becomes one token, sequences stay short
VLM_ARCH = dict(
    hidden=192, layers=4, heads=4, kv_heads=2, intermediate=768,
    mrope_section=(6, 9, 9),  # sums to head_dim / 2 = 24
    vision_depth=2, vision_hidden=128, vision_heads=4,
)
# White maps to 0 and every palette colour away from it: with CLIP's mean/std the white background
# swamped the image features, with mean 1 / std 0.5 colour was learned in under 150 steps.
VLM_IMAGE_MEAN = (1.0, 1.0, 1.0)
VLM_IMAGE_STD = (0.5, 0.5, 0.5)
# Confidence calibration: the saved model's logits are multiplied by this factor (its final norm is
# scaled; embeddings are tied, so the head itself cannot be). Trained for minutes, the model spreads
# its mass thinly, and PeBR sampling (T 1.2, top_k 0) over a 60-token response then wanders off
# the layout: at factor 1 only 40-90% of samples kept the four headers and no item was 8/8 correct.
# Factor 10 (so T 1.2 samples like T 0.12 on the unscaled model) measured on a 639-step build:
# Easy / Medium / Hard 0 / 67 / 33% unscaled, 12 / 56 / 32% at 4x, 17 / 48 / 36% at 6x, 22 / 34 / 44% at
# 10x, with 99.8% of samples in the layout. It sharpens what was learned; it adds no knowledge.
VLM_LOGIT_SCALE = 10.0
MAX_NEW_TOKENS = 160  # the longest response (two six-shape descriptions) is about 110 tokens

# ---- CLIP recipe ---------------------------------------------------------------------------------
CLIP_STEPS = 400  # AUC 0.9993 after 392 steps (150 s on 1 thread), 0.9992 after 588
CLIP_SECONDS = 150.0  # cap on loaded cores
CLIP_BATCH = 64  # 128 gave only 95 steps in 150 s on loaded cores (AUC 0.867); 64 doubles the
# updates and still gives 63 negatives per pair: 588 steps, AUC 0.999 on idle cores
CLIP_LR = 1e-3
CLIP_WARMUP_STEPS = 30  # 9 warm-up steps (5% of 150 s on loaded cores) stalled the loss at 2.3
CLIP_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 112, "layers": 3, "width": 128, "head_width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 3},
}
CLIP_PREPROCESS_CFG = {"mean": list(VLM_IMAGE_MEAN), "std": list(VLM_IMAGE_STD)}

REPORT_SEED = 90210  # a generate_items seed; training never calls generate_items


# ---- cache -------------------------------------------------------------------------------------


def vlm_recipe() -> dict[str, Any]:
    """Every constant a shapes-vlm build depends on, except its budget and seed."""
    return {"batch": VLM_BATCH, "buckets": VLM_BUCKETS, "lr": VLM_LR, "warmup_steps": VLM_WARMUP_STEPS,
            "colour_phase": VLM_COLOUR_PHASE, "single_share": VLM_SINGLE_SHARE,
            "content_weight": VLM_CONTENT_WEIGHT, "off_layout_share": VLM_OFF_LAYOUT_SHARE,
            "logit_scale": VLM_LOGIT_SCALE, "vocab": VLM_VOCAB, "image_mean": VLM_IMAGE_MEAN,
            "image_std": VLM_IMAGE_STD, **VLM_ARCH}


def clip_recipe() -> dict[str, Any]:
    """Every constant a shapes-clip build depends on, except its budget and seed."""
    return {"batch": CLIP_BATCH, "lr": CLIP_LR, "warmup_steps": CLIP_WARMUP_STEPS,
            "preprocess": CLIP_PREPROCESS_CFG, **CLIP_MODEL_CFG}


RECIPES: dict[str, Callable[[], dict[str, Any]]] = {"shapes-vlm": vlm_recipe, "shapes-clip": clip_recipe}
BUDGET_KEYS = ("seconds_budget", "max_steps")  # saved beside the recipe, but a build of any budget is kept


def is_built(folder: str | Path) -> bool:
    """True when `folder` holds a finished build of today's recipe.

    A build saved under other recipe constants (an earlier VLM_OFF_LAYOUT_SHARE, say) counts as not
    built, so `ensure_builtin` trains it again instead of loading it; budget and seed do not count.
    """
    path = Path(folder) / BUILD_INFO
    if not path.is_file():
        return False
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.get("name") not in RECIPES:
        return True
    saved = {k: v for k, v in info.get("recipe", {}).items() if k not in BUDGET_KEYS}
    return saved == json.loads(json.dumps(RECIPES[info["name"]]()))  # tuples saved as lists


def build_info(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / BUILD_INFO).read_text(encoding="utf-8"))


def _build_atomically(folder: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Run `build(tmp)` in a sibling temp folder, write BUILD_INFO, then rename it to `folder`."""
    folder = Path(folder)
    if is_built(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        info = build(tmp)
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        if folder.exists() and not is_built(folder):
            # an unfinished leftover (no BUILD_INFO) or another recipe's build is never trusted:
            # moved aside in one rename, so a reader sees the old folder, none, or the new one
            stale = folder.parent / f".{folder.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):  # another builder moved it first
                os.rename(folder, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_built(folder):  # lost a race to another builder: theirs is as good as ours
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def ensure_builtin(name: str, progress: Progress | None = None) -> Path:
    """The cached folder of built-in `name` ("shapes-vlm" | "shapes-clip"), building it if needed."""
    from workers.models.specs import builtin_folder

    folder = builtin_folder(name)
    if is_built(folder):
        return folder
    if name == "shapes-vlm":
        return build_shapes_vlm(folder, progress=progress)
    if name == "shapes-clip":
        return build_shapes_clip(folder, progress=progress)
    raise ValueError(f"no built-in named {name!r}")


# ---- the PeBR response layout ------------------------------------------------------------------


def pebr_response(description: str, rationale: str, step: str, answer: str, full: bool = True) -> str:
    """A target response in PeBR's layout; `full=False` gives the short layout (description, answer).

    >>> pebr_response("A large red circle on a white background.", "Find the circle.", "Read it.", "red", full=False)
    '### Image Description: A large red circle on a white background.\\n### The final answer is: red'
    """
    if not full:
        return f"### Image Description: {description}\n{ANSWER_HEADER} {answer}"
    return (
        f"### Image Description: {description}\n### Rationales: {rationale}\n"
        f"### Step 1: {step}\n{ANSWER_HEADER} {answer}"
    )


def extract_answer(response: str) -> str | None:
    """The text after the last "### The final answer is:", or None if the header is missing."""
    if ANSWER_HEADER not in response:
        return None
    return response.rsplit(ANSWER_HEADER, 1)[1].strip()


def _full_layout(response: str) -> bool:
    """All four PeBR headers present: where PeBR's format reward is 1."""
    return all(header in response for header in HEADERS)


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", " , ").split()).strip(" .")


def _grade(response: str, answer: str) -> bool:
    """Exact match after normalisation on the text after the answer header (shared verifier later).

    >>> _grade("### The final answer is: Red.", "red")
    True
    """
    extracted = extract_answer(response)
    return extracted is not None and _normalise(extracted) == _normalise(answer)


def describe_reading_order(scene: Scene) -> str:
    """`describe` with shapes in reading order (rows of 28 px, then left to right).

    The generator lists shapes in the order they were placed, which the image does not show; the
    VLM learns this order instead, so its description is predictable from the pixels. The words
    (and so keywords and CLIP scores) are the same as `describe`'s.
    """
    ordered = sorted(scene.shapes, key=lambda s: (s.cy // 28, s.cx))
    return describe(Scene(shapes=ordered, noise_seed=scene.noise_seed))


def describe_scenes(scenes: list[Scene]) -> str:
    if len(scenes) == 1:
        return describe_reading_order(scenes[0])
    return " ".join(f"Image {i + 1}: {describe_reading_order(s)}" for i, s in enumerate(scenes))


_PATTERNS: dict[str, re.Pattern[str]] = {
    "colour_of": re.compile(r"What colour is the (\w+)\?"),
    "count_kind": re.compile(r"How many (\w+) are there\?"),
    "presence": re.compile(r"Is there an? (\w+) (\w+)\?"),
    "more_than": re.compile(r"How many more (\w+) than (\w+) are there\?"),
    "multi_count": re.compile(r"How many (\w+) are there in the two images together\?"),
}


def rationale_and_step(qtype: str, question: str) -> tuple[str, str]:
    """A short PeBR-style rationale and one step that restate the task; the answer stays implicit.

    Kept short on purpose: every training token costs CPU time (about 1 s per batch of 32 x 110).
    """
    if qtype in ("colour_of", "colour_of_mc"):
        kind = _PATTERNS["colour_of"].search(question).group(1)
        step = f"Read the colour of the {kind}."
        return ("Match the colour to an option.", step) if qtype == "colour_of_mc" else (f"Find the {kind}.", step)
    if qtype == "count_kind":
        plural = _PATTERNS["count_kind"].search(question).group(1)
        return f"Find the {plural}.", f"Count the {plural}."
    if qtype == "presence":
        colour, kind = _PATTERNS["presence"].search(question).groups()
        return f"Find each {kind}.", f"Check if one is {colour}."
    if qtype == "total_count":
        return "Find every shape.", "Count the shapes."
    if qtype == "more_than":
        more, fewer = _PATTERNS["more_than"].search(question).groups()
        return f"Count the {more} and the {fewer}.", "Subtract the counts."
    if qtype == "total_sides":
        return "Find every shape.", "Add up the sides of the shapes."
    if qtype == "most_colour":
        return "Group the shapes by colour.", "Take the largest group and count it."
    if qtype == "multi_count":
        plural = _PATTERNS["multi_count"].search(question).group(1)
        return f"Count the {plural} in each image.", "Add the two counts."
    raise ValueError(f"unknown question type {qtype!r}")


# ---- VLM training data -------------------------------------------------------------------------

Example = tuple[str, list[Any], str]  # (question with <image> placeholders, images, response)


def _single_colour(rng: random.Random) -> tuple[list[Scene], str, str, str]:
    scene = sample_scene(rng, n_shapes=1)
    shape = scene.shapes[0]
    return [scene], f"What colour is the {shape.kind}?", shape.colour, "free_text"


def _draw_text(rng: random.Random, qtype: str, full: bool = True) -> tuple[list[Scene], str, str]:
    """(scenes, question with <image> placeholders, target response) for one example of `qtype`."""
    drawn = None
    while drawn is None:
        drawn = _single_colour(rng) if qtype == "single_colour" else TEMPLATES[qtype](rng)
    scenes, text, answer, _answer_type = drawn
    rationale, step = rationale_and_step("colour_of" if qtype == "single_colour" else qtype, text)
    response = pebr_response(describe_scenes(scenes), rationale, step, answer, full=full)
    return scenes, "<image>" * len(scenes) + text, response


def draw_example(rng: random.Random, qtype: str) -> Example:
    """One training example of `qtype` ("single_colour" = a one-shape colour question), full layout."""
    scenes, question, response = _draw_text(rng, qtype)
    return question, [render(scene) for scene in scenes], response


def _full_layout_flags(rng: random.Random, n: int) -> list[bool]:
    """`n` flags in random order, exactly round(VLM_OFF_LAYOUT_SHARE * n) of them False (short layout).

    Exact rather than a coin per example: the branch between the layouts is learned as a
    probability that sampling then sharpens (see VLM_OFF_LAYOUT_SHARE), so drift in the drawn
    share would move the sampled format rate several times over. Used for the tokenizer's corpus;
    training shortens examples in `training_batches`.
    """
    short = round(VLM_OFF_LAYOUT_SHARE * n)
    flags = [False] * short + [True] * (n - short)
    rng.shuffle(flags)
    return flags


def short_layout(response: str) -> str:
    """A full-layout `response` without its "### Rationales:" and "### Step 1:" sections.

    >>> short_layout(pebr_response("A small red circle on a white background.", "Find it.", "Read it.", "red"))
    '### Image Description: A small red circle on a white background.\\n### The final answer is: red'
    """
    description, _, rest = response.partition(f"\n{HEADERS[1]}")
    return f"{description}\n{rest[rest.index(ANSWER_HEADER):]}"


def training_batches(rng: random.Random, qtypes: list[str]) -> list[list[Example]]:
    """Length-bucketed batches of one example per entry of `qtypes`, some in the short layout.

    Exactly round(VLM_OFF_LAYOUT_SHARE * n) examples are shortened, as evenly as possible over the
    batches and only after bucketing. Shortened before bucketing (build 1 of the off-layout change),
    they gathered in the short batches, where the loss (a mean over a batch's weighted tokens) gives
    each token more weight: the branch token saw an effective short share of 0.56 for a drawn 0.47,
    the model learned 0.57, and only 17% of samples kept the four headers instead of about 70%.
    """
    batches = _length_bucketed(rng, [draw_example(rng, q) for q in qtypes])
    short = round(VLM_OFF_LAYOUT_SHARE * len(qtypes))
    per_batch = [short // len(batches) + (i < short % len(batches)) for i in range(len(batches))]
    rng.shuffle(per_batch)
    for batch, k in zip(batches, per_batch):
        for i in rng.sample(range(len(batch)), k):
            question, images, response = batch[i]
            batch[i] = (question, images, short_layout(response))
    return batches


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def training_mix() -> dict[str, float]:
    """The pool's own question mix, plus single-shape colour questions kept from the warm-up."""
    total = sum(QTYPE_WEIGHTS.values())
    mix = {q: (1 - VLM_SINGLE_SHARE) * w / total for q, w in QTYPE_WEIGHTS.items()}
    mix["single_colour"] = VLM_SINGLE_SHARE
    return mix


def _tokenizer_corpus(rng: random.Random, n: int = 3000) -> list[str]:
    """Prompts and responses the BPE is trained on, plus the chat scaffolding and every word."""
    words = [*COLOURS, *KINDS, *PLURALS.values(), *NUMBER_WORDS, "small", "large", "Image"]
    corpus = ["system\nYou are a helpful assistant.\nuser\nassistant\n", " ".join(words)]
    mix = training_mix()
    for full in _full_layout_flags(rng, n):
        _scenes, question, response = _draw_text(rng, _pick(rng, mix), full)
        corpus.append(question.replace("<image>", "") + "\n" + response)
    return corpus


def _length_bucketed(rng: random.Random, examples: list[Example]) -> list[list[Example]]:
    """Split examples into batches of similar length, in random order: padding costs compute.

    Random batches were padded to 1.3-1.7x their mean length; sorting VLM_BUCKETS batches' worth
    first brings that close to 1.
    """
    examples = sorted(examples, key=lambda e: len(e[0]) + len(e[2]) + 60 * len(e[1]))
    batches = [examples[i : i + VLM_BATCH] for i in range(0, len(examples), VLM_BATCH)]
    rng.shuffle(batches)
    return batches


def _progress(steps: int, max_steps: int | None, elapsed: float, seconds_budget: float) -> float:
    """Share of training done: the larger of steps / max_steps and elapsed / seconds_budget."""
    return max(steps / max_steps if max_steps else 0.0, elapsed / seconds_budget)


def _lr_factor(frac: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up over the first `warmup_steps` steps, times a cosine decay to 0 over `frac`.

    The warm-up counts steps, not a share of the budget: on loaded cores 5% of the CLIP's 150 s
    was 9 steps, and that run stalled at loss 2.3 after 287 steps (AUC 0.93); with 30 warm-up
    steps, on the same loaded cores, loss was 0.4 after 296 steps (AUC 0.997).
    """
    return min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _assistant_label_mask(input_ids, start_id: int, header_len: int):
    """True for tokens after the last "<|im_start|>assistant\\n" of each row (the response)."""
    import torch

    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    last_start = torch.where(input_ids == start_id, positions, -1).max(dim=1).values
    return positions >= (last_start + 1 + header_len).unsqueeze(1)


def content_token_ids(tokenizer) -> list[int]:
    """Ids of the words that carry what the image shows or the answer: colours, kinds, sizes, counts.

    Their loss is weighted by VLM_CONTENT_WEIGHT. With a plain mean over response tokens, the
    constant layout text (headers, "on a white background.") dominated the gradient and the
    model never learned to read a colour from the image (300 steps of single-shape questions,
    colour at chance); weighting these tokens x10 learned it in under 150 steps.
    """
    words = [*COLOURS, *KINDS, *PLURALS.values(), *NUMBER_WORDS, "small", "large", "yes", "no",
             *"ABCD", *"0123456789"]
    words += [w.capitalize() for w in NUMBER_WORDS]
    ids = set()
    for word in words:
        for text in (word, " " + word):
            pieces = tokenizer(text, add_special_tokens=False).input_ids
            if len(pieces) == 1:
                ids.add(pieces[0])
    return sorted(ids)


def weighted_response_loss(logits, labels, content_ids, weight: float):
    """Next-token cross-entropy over labelled tokens, content tokens weighted by `weight`."""
    import torch
    import torch.nn.functional as F

    logits, targets = logits[:, :-1].float(), labels[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                         ignore_index=-100, reduction="none").view(targets.shape)
    w = (targets != -100).float() * (1 + (weight - 1) * torch.isin(targets, content_ids).float())
    return (ce * w).sum() / w.sum()


def vlm_batch(processor, examples: list[Example]):
    """Tokenised batch (left padded) with labels on the response and its closing <|im_end|> only."""
    from workers.models.sampling import prompt_text

    tokenizer = processor.tokenizer
    texts = [prompt_text(processor, q, len(imgs)) + r + "<|im_end|>" for q, imgs, r in examples]
    images = [img for _, imgs, _ in examples for img in imgs]
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left")
    start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    header_len = len(tokenizer("assistant\n", add_special_tokens=False).input_ids)
    keep = _assistant_label_mask(enc["input_ids"], start_id, header_len) & enc["attention_mask"].bool()
    enc["labels"] = enc["input_ids"].masked_fill(~keep, -100)
    return enc


def build_shapes_vlm(
    folder: str | Path,
    progress: Progress | None = None,
    seconds_budget: float = VLM_SECONDS,
    seed: int = 0,
    max_steps: int | None = VLM_STEPS,
    device: str = "cpu",
) -> Path:
    """Train the shapes VLM for `max_steps` steps or `seconds_budget` seconds, whichever ends first.

    Returns `folder` at once when it already holds a finished build. The lr schedule and the
    colour phase follow `_progress`, the larger of the two shares spent: on idle cores the step
    count ends training (a repeatable model), on loaded ones the clock does (a bounded build with
    fewer steps), and a tiny budget (tests) runs the whole schedule in miniature.
    `max_steps=None` trains by time alone; `device="cuda"` trains on a GPU.
    """

    def build(tmp: Path) -> dict[str, Any]:
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        from workers.models.sampling import ThreadTuner
        from workers.models.tiny import qwen_tokenizer, qwen_vl_config, qwen_vl_processor, save_vlm

        started = time.monotonic()
        report = progress or (lambda fraction, message: None)
        report(0.0, "shapes-vlm: training the tokenizer")
        rng = random.Random(seed)
        tokenizer = qwen_tokenizer(_tokenizer_corpus(random.Random(seed + 1)), vocab_size=VLM_VOCAB)
        processor = qwen_vl_processor(tokenizer, image_mean=VLM_IMAGE_MEAN, image_std=VLM_IMAGE_STD)
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(qwen_vl_config(tokenizer, **VLM_ARCH)).to(device).train()
        # fused AdamW: 5x faster than the foreach version on these CPUs (0.015 s vs 0.08 s a step)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=VLM_LR, betas=(0.9, 0.98), weight_decay=0.01, fused=True
        )
        mix = training_mix()
        content_ids = torch.tensor(content_token_ids(tokenizer), device=device)
        tuner = ThreadTuner(enabled=device == "cpu")
        steps, losses, queue = 0, [], []
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            frac = _progress(steps, max_steps, elapsed, seconds_budget)
            if frac >= 1.0:
                break
            if not queue:
                in_colour_phase = frac < VLM_COLOUR_PHASE
                qtypes = [
                    "single_colour" if in_colour_phase else _pick(rng, mix) for _ in range(VLM_BATCH * VLM_BUCKETS)
                ]
                queue = training_batches(rng, qtypes)
            batch = vlm_batch(processor, queue.pop()).to(device)
            for group in optimizer.param_groups:
                group["lr"] = VLM_LR * _lr_factor(frac, steps, VLM_WARMUP_STEPS)
            tuner.before_step()
            step_start = time.monotonic()
            labels = batch.pop("labels")
            loss = weighted_response_loss(model(**batch).logits, labels, content_ids, VLM_CONTENT_WEIGHT)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            tuner.after_step(time.monotonic() - step_start, batch["input_ids"].numel())
            steps += 1
            losses.append(loss.item())
            if steps % 10 == 0:
                recent = sum(losses[-10:]) / len(losses[-10:])
                report(min(frac, 0.99), f"shapes-vlm: step {steps}, loss {recent:.3f}")
        train_seconds = time.monotonic() - t0
        threads = tuner.restore()
        with torch.no_grad():
            model.model.language_model.norm.weight.mul_(VLM_LOGIT_SCALE)
        save_vlm(model.eval(), processor, tmp)
        report(1.0, f"shapes-vlm: done, {steps} steps")
        return {
            "name": "shapes-vlm",
            "seed": seed,
            "steps": steps,
            "train_seconds": round(train_seconds, 1),
            "build_seconds": round(time.monotonic() - started, 1),
            "final_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
            "params": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            "threads": threads,
            "recipe": {**vlm_recipe(), "seconds_budget": seconds_budget, "max_steps": max_steps},
        }

    return _build_atomically(Path(folder), build)


# ---- CLIP ----------------------------------------------------------------------------------------


def _clip_pair(rng: random.Random) -> tuple[Any, str]:
    """(image, caption): the generator's caption order or reading order, so both score alike."""
    scene = sample_scene(rng)
    caption = describe(scene) if rng.random() < 0.5 else describe_reading_order(scene)
    return render(scene), caption


def build_shapes_clip(
    folder: str | Path,
    progress: Progress | None = None,
    seconds_budget: float = CLIP_SECONDS,
    seed: int = 0,
    max_steps: int | None = CLIP_STEPS,
) -> Path:
    """Train the shapes CLIP contrastively on (image, caption) pairs and save it for `local-dir:`."""

    def build(tmp: Path) -> dict[str, Any]:
        import open_clip
        import torch
        import torch.nn.functional as F

        from workers.models.sampling import ThreadTuner
        from workers.models.tiny import save_open_clip

        started = time.monotonic()
        report = progress or (lambda fraction, message: None)
        rng = random.Random(seed)
        torch.manual_seed(seed)
        model = open_clip.CLIP(**CLIP_MODEL_CFG).train()
        preprocess = open_clip.image_transform(112, is_train=False, **CLIP_PREPROCESS_CFG)
        tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=CLIP_MODEL_CFG["text_cfg"]["context_length"])
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
            lr=CLIP_LR, betas=(0.9, 0.98), eps=1e-6, fused=True,
        )
        labels = torch.arange(CLIP_BATCH)
        tuner = ThreadTuner(every=20)
        steps, losses = 0, []
        t0 = time.monotonic()
        while (frac := _progress(steps, max_steps, time.monotonic() - t0, seconds_budget)) < 1.0:
            pairs = [_clip_pair(rng) for _ in range(CLIP_BATCH)]
            images = torch.stack([preprocess(img) for img, _ in pairs])
            texts = tokenizer([caption for _, caption in pairs])
            for group in optimizer.param_groups:
                group["lr"] = CLIP_LR * _lr_factor(frac, steps, CLIP_WARMUP_STEPS)
            tuner.before_step()
            step_start = time.monotonic()
            image_features = model.encode_image(images, normalize=True)
            text_features = model.encode_text(texts, normalize=True)
            logits = model.logit_scale.exp() * image_features @ text_features.T
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            tuner.after_step(time.monotonic() - step_start, CLIP_BATCH)
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            steps += 1
            losses.append(loss.item())
            if steps % 5 == 0:
                report(min(frac, 0.99), f"shapes-clip: step {steps}, loss {sum(losses[-5:]) / 5:.3f}")
        train_seconds = time.monotonic() - t0
        threads = tuner.restore()
        save_open_clip(model.eval(), CLIP_MODEL_CFG, tmp, preprocess_cfg=CLIP_PREPROCESS_CFG)
        report(1.0, f"shapes-clip: done, {steps} steps")
        return {
            "name": "shapes-clip",
            "seed": seed,
            "steps": steps,
            "train_seconds": round(train_seconds, 1),
            "build_seconds": round(time.monotonic() - started, 1),
            "final_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
            "params": sum(p.numel() for p in model.parameters()),
            "threads": threads,
            "recipe": {**clip_recipe(), "seconds_budget": seconds_budget, "max_steps": max_steps},
        }

    return _build_atomically(Path(folder), build)


# ---- acceptance report ---------------------------------------------------------------------------


def _roc_auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / (n_pos * n_neg))."""
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(label for _, label in scored[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _hard_negative(scene: Scene, rng: random.Random) -> Scene:
    """The scene with one shape's colour or kind changed (a caption that is almost right)."""
    from dataclasses import replace

    shapes = list(scene.shapes)
    i = rng.randrange(len(shapes))
    if rng.random() < 0.5:
        shapes[i] = replace(shapes[i], colour=rng.choice([c for c in COLOURS if c != shapes[i].colour]))
    else:
        shapes[i] = replace(shapes[i], kind=rng.choice([k for k in KINDS if k != shapes[i].kind]))
    return Scene(shapes=shapes, noise_seed=scene.noise_seed)


def clip_report(clip_folder: str | Path, items: int = 500, seed: int = REPORT_SEED) -> dict[str, Any]:
    """AUC and mean cosines of matched vs mismatched (image, caption) pairs from a held-out pool."""
    import torch

    from workers.models.specs import resolve_clip
    from workers.shapes import generate_items

    model, preprocess, tokenizer = resolve_clip(f"local-dir:{Path(clip_folder).resolve()}")
    rng = random.Random(seed)
    pool = [(item, imgs) for item, imgs in generate_items(items, seed) if len(item.scenes) == 1]
    captions = [item.description for item, _ in pool]
    mismatched = captions[1:] + captions[:1]  # every image against another item's caption
    hard = [describe(_hard_negative(item.scenes[0], rng)) for item, _ in pool]
    with torch.inference_mode():
        images = model.encode_image(torch.stack([preprocess(imgs[0]) for _, imgs in pool]), normalize=True)

        def cosines(texts: list[str]) -> list[float]:
            return (images * model.encode_text(tokenizer(texts), normalize=True)).sum(-1).tolist()

        matched, other, near = cosines(captions), cosines(mismatched), cosines(hard)
    return {
        "clip_pairs": len(pool),
        "clip_auc": _roc_auc(matched, other),
        "clip_hard_auc": _roc_auc(matched, near),
        "clip_cos_matched": sum(matched) / len(matched),
        "clip_cos_mismatched": sum(other) / len(other),
        "clip_cos_hard": sum(near) / len(near),
    }


def vlm_report(
    vlm_folder: str | Path, items: int = 500, seed: int = REPORT_SEED, n: int = 8,
    temperature: float = 1.2, top_p: float = 0.99, max_new_tokens: int = MAX_NEW_TOKENS, device: str | None = None,
) -> dict[str, Any]:
    """PeBR difficulty buckets over the answered items of a fresh `generate_items(items, seed)` pool."""
    from workers.models.sampling import sample_answers
    from workers.models.specs import resolve_vlm
    from workers.shapes import generate_items

    model, processor = resolve_vlm(str(Path(vlm_folder).resolve()), device=device)
    pool = [(item, imgs) for item, imgs in generate_items(items, seed) if item.answer is not None]
    t0 = time.monotonic()
    answers = sample_answers(
        model, processor, [(item.question, imgs) for item, imgs in pool], n=n, temperature=temperature,
        top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, seed=seed,
    )
    sample_seconds = time.monotonic() - t0
    correct = [sum(_grade(r, item.answer) for r in rs) for (item, _), rs in zip(pool, answers)]
    buckets = Counter("easy" if c == n else "hard" if c == 0 else "medium" for c in correct)
    per_qtype: dict[str, Counter[str]] = {}
    for (item, _), c in zip(pool, correct):
        per_qtype.setdefault(item.qtype, Counter())["easy" if c == n else "hard" if c == 0 else "medium"] += 1
    flat = [r for rs in answers for r in rs]
    return {
        "vlm_items": len(pool),
        "easy": buckets["easy"] / len(pool),
        "medium": buckets["medium"] / len(pool),
        "hard": buckets["hard"] / len(pool),
        "accuracy": sum(correct) / (n * len(pool)),
        "format_rate": sum(map(_full_layout, flat)) / len(flat),
        # items whose n samples hold both layouts: the groups in which the format reward varies
        "format_mixed": sum(len({_full_layout(r) for r in rs}) == 2 for rs in answers) / len(pool),
        "answer_rate": sum(extract_answer(r) is not None for r in flat) / len(flat),
        "sample_seconds": sample_seconds,
        "per_qtype": {q: dict(c) for q, c in sorted(per_qtype.items())},
        "example_response": answers[0][0],
    }


def report(
    vlm_folder: str | Path, clip_folder: str | Path, items: int = 500, seed: int = REPORT_SEED
) -> dict[str, Any]:
    """The acceptance figures: Easy / Medium / Hard shares (each should be >= 0.15) and CLIP AUC (>= 0.9)."""
    figures = {**vlm_report(vlm_folder, items=items, seed=seed), **clip_report(clip_folder, items=items, seed=seed)}
    for folder, key in ((vlm_folder, "vlm"), (clip_folder, "clip")):
        if is_built(folder):
            info = build_info(folder)
            figures[f"{key}_build_seconds"] = info["build_seconds"]
            figures[f"{key}_steps"] = info["steps"]
    return figures
