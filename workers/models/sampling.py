"""Batched answer sampling from a chat VLM: N answers per item in one `generate` per batch of items.

Prompts are left-padded (right padding shifts where generation starts and changes the outputs),
and each item's question has its "<image>" placeholders turned into the processor's image blocks.
"""

from __future__ import annotations

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
    disables transformers' default top-k of 50. The result depends only on `seed` and the inputs
    and `batch_size` (the global torch RNG is restored afterwards).

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
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            enc = encode_prompts(processor, chunk).to(device)
            processors = []
            if prefix_allowed_tokens_fn is not None:
                processors.append(RowConstraint(prefix_allowed_tokens_fn, offset=start * n))
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
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            results.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
    return results
