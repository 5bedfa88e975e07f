"""open_clip embeddings in batches, L2-normalised (cosine = dot product)."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image


class ClipEncoder:
    def __init__(self, spec: str, batch_size: int = 64) -> None:
        from workers.models.specs import parse_spec, resolve_clip

        self.model, self.preprocess, self.tokenizer = resolve_clip(parse_spec(spec))
        self.model.eval()
        self.batch_size = batch_size

    def images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack([self.preprocess(img.convert("RGB")) for img in images[start:start + self.batch_size]])
                out.append(torch.nn.functional.normalize(self.model.encode_image(batch).float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(list(texts[start:start + self.batch_size]))
                out.append(torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


@lru_cache(maxsize=2)
def get_clip(spec: str) -> ClipEncoder:
    return ClipEncoder(spec)
