"""Sampling backends behind one interface: local transformers models and OpenAI-compatible endpoints."""
from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, Sequence

from PIL import Image


@dataclass(frozen=True)
class SampleSettings:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int


class Sampler(Protocol):
    def sample(self, items: Sequence[tuple[str, Sequence[Image.Image]]], settings: SampleSettings) -> list[list[str]]:
        """n answers per (question with <image> placeholders, images) item."""


class TransformersSampler:
    def __init__(self, spec: str) -> None:
        from workers.models.specs import parse_spec, resolve_vlm

        self.model, self.processor = resolve_vlm(parse_spec(spec))

    def sample(self, items, settings: SampleSettings) -> list[list[str]]:
        from workers.models.sampling import sample_answers

        return sample_answers(self.model, self.processor, list(items), n=settings.n, temperature=settings.temperature,
                              top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, seed=settings.seed)


class EndpointError(RuntimeError):
    """The endpoint failed for one item (timeout, HTTP error, malformed reply)."""


class OpenAISampler:
    """A user's vLLM / SGLang server speaking the OpenAI chat-completions protocol."""

    def __init__(self, base_url: str, model: str, timeout: float | None = None, parallel: int = 8) -> None:
        import os

        timeout = timeout if timeout is not None else float(os.environ.get("LOOKFIRST_ENDPOINT_TIMEOUT", "120"))
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.parallel = parallel

    def sample(self, items, settings: SampleSettings) -> list[list[str] | EndpointError]:
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return list(pool.map(lambda pair: self._one(pair[1], settings, pair[0]), enumerate(items)))

    def _one(self, item, settings: SampleSettings, index: int) -> list[str] | EndpointError:
        import httpx

        question, images = item
        content: list[dict] = []
        parts = question.split("<image>")
        for i, part in enumerate(parts):
            if i > 0 and i - 1 < len(images):
                content.append({"type": "image_url", "image_url": {"url": _data_url(images[i - 1])}})
            if part:
                content.append({"type": "text", "text": part})
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "n": settings.n,
                "temperature": settings.temperature, "top_p": settings.top_p, "max_tokens": settings.max_new_tokens,
                "seed": settings.seed + index}
        try:
            response = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=self.timeout)
            response.raise_for_status()
            choices = response.json()["choices"]
            return [c["message"]["content"] or "" for c in sorted(choices, key=lambda c: c.get("index", 0))]
        except httpx.TimeoutException:
            return EndpointError(f"endpoint {self.base_url} timed out after {self.timeout:.0f}s")
        except (httpx.HTTPError, KeyError, TypeError, json.JSONDecodeError) as exc:
            return EndpointError(f"endpoint {self.base_url} failed: {exc}")


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@lru_cache(maxsize=2)
def get_sampler(spec: str) -> TransformersSampler | OpenAISampler:
    """One loaded model per spec per worker process."""
    from workers.models.specs import parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        return OpenAISampler(parsed.base_url, parsed.model)
    return TransformersSampler(spec)
