"""Batched answer sampling from a chat VLM: N answers per item in one `generate` per batch of items.

Prompts are left-padded (right padding shifts where generation starts and changes the outputs),
and each item's question has its "<image>" placeholders turned into the processor's image blocks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

IMAGE_PLACEHOLDER = "<image>"


def chat_messages(question: str, n_images: int) -> list[dict[str, Any]]:
    """One user turn: an image block where each "<image>" stood, the text around them kept in order.

    If the question has fewer placeholders than images, the missing image blocks go first.

    >>> chat_messages("<image>How many?", 1)[0]["content"]
    [{'type': 'image'}, {'type': 'text', 'text': 'How many?'}]
    """
    parts = question.split(IMAGE_PLACEHOLDER)
    missing = n_images - (len(parts) - 1)
    if missing < 0:
        raise ValueError(f"question has {len(parts) - 1} {IMAGE_PLACEHOLDER} placeholders but {n_images} images")
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(missing)]
    for i, part in enumerate(parts):
        if i > 0:
            content.append({"type": "image"})
        if part:
            content.append({"type": "text", "text": part})
    return [{"role": "user", "content": content}]


def prompt_text(processor, question: str, n_images: int) -> str:
    """The chat-templated prompt, ending with the assistant header generation continues from."""
    return processor.apply_chat_template(
        chat_messages(question, n_images), add_generation_prompt=True, tokenize=False
    )


def encode_prompts(processor, items: Sequence[tuple[str, Sequence[Image.Image]]]):
    """Tokenise a batch of (question, images) with LEFT padding; returns the processor's BatchFeature."""
    texts = [prompt_text(processor, question, len(images)) for question, images in items]
    images = [img.convert("RGB") for _, imgs in items for img in imgs]
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        return processor(
            text=texts, images=images or None, return_tensors="pt", padding=True, padding_side="left"
        )
    finally:
        tokenizer.padding_side = side


class ThreadTuner:
    """Picks torch's thread count (1..cores) by measured speed, and re-checks it as load changes.

    On 2 cores shared with another busy process, 2 threads ran a training step 6x SLOWER than 1
    (OpenMP workers wait on the descheduled one), while on idle cores 2 threads are faster. So
    every `every` steps one step runs with another count; a count faster per token by 15% wins.
    """

    def __init__(self, every: int = 40, enabled: bool = True):
        import torch

        self.torch, self.every = torch, every
        self.choices = sorted({1, max(1, os.cpu_count() or 1)}) if enabled else [torch.get_num_threads()]
        now = torch.get_num_threads()
        self.current = now if now in self.choices else self.choices[-1]
        self.recent: list[float] = []  # seconds per token with the current count
        self.steps = 0
        self.trying: int | None = None
        self.initial = self.torch.get_num_threads()

    def before_step(self) -> None:
        self.steps += 1
        others = [c for c in self.choices if c != self.current]
        due = self.steps == 3 or self.steps % self.every == 0  # the first check comes early
        probe = others and len(self.recent) >= 2 and due
        self.trying = others[(self.steps // self.every) % len(others)] if probe else None
        self.torch.set_num_threads(self.trying or self.current)

    def after_step(self, seconds: float, tokens: int) -> None:
        """Record a step of `tokens` tokens (any size measure) that took `seconds`."""
        rate = seconds / max(1, tokens)
        if self.trying is None:
            self.recent = (self.recent + [rate])[-10:]
            return
        typical = sorted(self.recent)[len(self.recent) // 2]
        if rate < 0.85 * typical:
            self.current, self.recent = self.trying, [rate]
        self.torch.set_num_threads(self.current)

    def restore(self) -> int:
        """Put torch's thread count back; returns the count training ended with."""
        self.torch.set_num_threads(self.initial)
        return self.current


class RowConstraint:
    """Logits processor: row r of the batch may only emit `fn(offset + r, ids_of_row_r)`."""

    def __init__(self, fn: Callable[[int, Any], list[int]], offset: int = 0):
        self.fn, self.offset = fn, offset

    def __call__(self, input_ids, scores):
        import torch

        mask = torch.full_like(scores, float("-inf"))
        for row in range(input_ids.shape[0]):
            allowed = self.fn(self.offset + row, input_ids[row])
            if not allowed:
                raise ValueError(f"prefix_allowed_tokens_fn allowed no token for row {self.offset + row}")
            mask[row, allowed] = 0.0
        return scores + mask


def sample_answers(
    model,
    processor,
    items: Sequence[tuple[str, Sequence[Image.Image]]],
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    top_k: int = 0,
    prefix_allowed_tokens_fn: Callable[[int, Any], list[int]] | None = None,
    batch_size: int = 32,
) -> list[list[str]]:
    """Sample `n` answers for each (question_text, images) item; returns one list of n texts per item.

    Items go `batch_size` at a time through one `generate(num_return_sequences=n)` each. `top_k=0`
    disables transformers' default top-k of 50. The result depends on `seed`, the inputs and
    `batch_size` (the global torch RNG is restored afterwards); on CPU, where `ThreadTuner` may
    change the thread count between batches, a near-tie can also flip with the float rounding.

    `prefix_allowed_tokens_fn(row, ids)` receives the global flattened row index item * n + sample,
    across batches too. That is NOT what `generate(prefix_allowed_tokens_fn=...)` itself passes: it
    gives the prompt index to all n samples of a prompt (it treats num_return_sequences as beams), so
    the function runs here through `RowConstraint`, placed before the temperature / top-p warpers.
    """
    import torch

    if n < 1:
        raise ValueError("n must be >= 1")
    model.eval()
    device = model.device
    tokenizer = processor.tokenizer
    end_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    eos = [i for i in end_ids if i is not None and i != tokenizer.unk_token_id]
    results: list[list[str]] = []
    devices = [device.index or 0] if device.type == "cuda" else []
    tuner = ThreadTuner(every=8, enabled=device.type == "cpu")
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            enc = encode_prompts(processor, chunk).to(device)
            processors = []
            if prefix_allowed_tokens_fn is not None:
                processors.append(RowConstraint(prefix_allowed_tokens_fn, offset=start * n))
            tuner.before_step()
            started = time.monotonic()
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
                logits_processor=processors or None,
            )
            tuner.after_step(time.monotonic() - started, out.numel())
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            results.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
    tuner.restore()
    return results
