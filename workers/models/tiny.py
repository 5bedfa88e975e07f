"""Tiny random-weight models for tests, and the Qwen-VL building blocks the built-ins reuse.

`tiny_vlm(folder)` saves a Qwen2.5-VL of about 0.2 M parameters plus a full processor in about a
second; `tiny_clip(folder)` saves an open_clip model that `local-dir:PATH` loads offline.
`forced_answers_fn` makes `sample_answers` emit given texts, so a test knows its pass rate exactly.

Everything here imports torch / transformers inside functions: importing this module is cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

# Qwen2-VL / Qwen2.5-VL special tokens, in the order the real tokenizer lists them.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template shipped with Qwen2-VL / Qwen2.5-VL Instruct: images become
# <|vision_start|><|image_pad|><|vision_end|>, which the processor expands to one pad per merged patch.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Enough text for a BPE to learn the chat scaffolding and some shapes-world words.
_TINY_CORPUS = (
    "system\nYou are a helpful assistant.\nuser\nassistant\n",
    "What colour is the triangle? How many circles are there? Is there a red square?",
    "### Image Description: A large red triangle and two small blue circles on a white background.",
    "### Rationales: Look at the shapes.\n### Step 1: Count them.\n### The final answer is: 3",
    "yes no A B C D red green blue yellow purple orange 0 1 2 3 4 5 6 7 8 9 hexagon pentagon",
)


def qwen_tokenizer(corpus: Iterable[str], vocab_size: int):
    """A byte-level BPE trained on `corpus` (milliseconds), wrapped as a Qwen2Tokenizer.

    It splits text with Qwen's pre-tokenizer regex (digits one by one), has every Qwen special
    token, ends turns with <|im_end|> and pads with <|endoftext|>, as Qwen2.5-VL-Instruct does.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus, trainer)
    model = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=[tuple(pair) for pair in model["merges"]],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        model_max_length=4096,
        padding_side="left",  # batched generation needs left padding
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    return tokenizer


def qwen_vl_processor(
    tokenizer,
    image_mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
    image_std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711),
    max_pixels: int = 112 * 112,
):
    """A Qwen2_5_VLProcessor around `tokenizer`: patch 14, merge 2, 112 x 112 -> 16 image tokens.

    The video processor is unused but required: Qwen2_5_VLProcessor raises TypeError without one.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": 28 * 28, "longest_edge": max_pixels}
    common = dict(size=size, image_mean=list(image_mean), image_std=list(image_std),
                  patch_size=14, temporal_patch_size=2, merge_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**common),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )


def qwen_vl_config(
    tokenizer,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    mrope_section: Sequence[int],
    vision_depth: int,
    vision_hidden: int,
    vision_heads: int,
    tie_embeddings: bool = True,
):
    """A Qwen2_5_VLConfig whose token ids match `tokenizer`; mrope_section must sum to head_dim / 2."""
    from transformers import Qwen2_5_VLConfig

    head_dim = hidden // heads
    if sum(mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {list(mrope_section)} must sum to head_dim/2 = {head_dim // 2}")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=tie_embeddings,
    )
    vision = dict(
        depth=vision_depth,
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 2,
        num_heads=vision_heads,
        out_hidden_size=hidden,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=list(range(vision_depth)),
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tie_embeddings,
    )


def generation_config_for(tokenizer):
    """Stop on <|im_end|> (or <|endoftext|>), pad with <|endoftext|>; sampling set per call."""
    from transformers import GenerationConfig

    end, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return GenerationConfig(eos_token_id=[end, pad], pad_token_id=pad, bos_token_id=pad)


def save_vlm(model, processor, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config_for(processor.tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_vlm(folder: str | Path, seed: int = 0) -> Path:
    """Save a random-weight Qwen2.5-VL (hidden 64, 2 layers, 2-layer vision tower) + processor."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = qwen_tokenizer(_TINY_CORPUS, vocab_size=320)
    processor = qwen_vl_processor(tokenizer)
    config = qwen_vl_config(
        tokenizer, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128,
        mrope_section=[2, 3, 3], vision_depth=2, vision_hidden=32, vision_heads=2,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    return save_vlm(model, processor, Path(folder))


# A tiny open_clip config: 112 px, patch 16, embed 64; `local-dir:` reads open_clip_config.json.
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 112, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def save_open_clip(model, model_cfg: dict[str, Any], folder: Path, preprocess_cfg: dict | None = None) -> Path:
    """Write open_clip_config.json + open_clip_model.safetensors, the layout `local-dir:` loads."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Save a random-weight tiny open_clip model (bundled tokenizer) loadable via "local-dir:PATH"."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    return save_open_clip(model, TINY_CLIP_CONFIG, Path(folder))


def forced_answers_fn(processor, answers_per_prompt: Sequence[Sequence[str]]) -> Callable[[int, Any], list[int]]:
    """A row constraint that makes `sample_answers(..., n=N)` emit exactly the given texts.

    `answers_per_prompt[p][s]` is the text of sample s for prompt p; every prompt needs the same
    number N of answers. The function expects the flattened row index p*N + s, which is what
    `sample_answers` passes (across its batches too). Handed straight to transformers'
    `generate(prefix_allowed_tokens_fn=...)` it would not work: there `batch_id` is the PROMPT
    index for all N samples (transformers 5.24 treats num_return_sequences like beams; checked in
    tests/workers/test_models.py), so samples of one prompt cannot be told apart.
    The generated part starts after the last "<|im_start|>assistant\n", so no prompt length is
    needed. After its text a row may only emit <|im_end|>, then padding.
    """
    tokenizer = processor.tokenizer if hasattr(processor, "tokenizer") else processor
    start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    header = len(tokenizer("assistant\n", add_special_tokens=False).input_ids)
    if len({len(answers) for answers in answers_per_prompt}) != 1:
        raise ValueError("every prompt needs the same number of forced answers")
    rows = [
        tokenizer(text, add_special_tokens=False).input_ids + [end]
        for answers in answers_per_prompt
        for text in answers
    ]

    def allowed(batch_id: int, input_ids) -> list[int]:
        ids = input_ids.tolist()
        last = len(ids) - 1 - ids[::-1].index(start_id)
        step = len(ids) - (last + 1 + header)
        target = rows[batch_id]
        return [target[step]] if step < len(target) else [tokenizer.pad_token_id]

    return allowed
