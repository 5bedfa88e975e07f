"""Image-text cosine with an open_clip model saved in a folder (the PeBR clip reward's model).

The trainer reads CLIP only from a folder (`local-dir:PATH`, or a bare path): the platform resolves its
built-in and hub models to folders before it calls the trainer, and the trainer never imports `workers`.
The folder holds open_clip_config.json + open_clip_model.safetensors (what open_clip's `local-dir:` loads).
Nothing heavy is imported until the first `similarities` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL_DIR_PREFIX = "local-dir:"


class ClipError(ValueError):
    """A --clip spec the trainer cannot use; the message says what it needs."""


def clip_folder(spec: str) -> Path:
    """The folder of a `local-dir:PATH` (or bare path) spec; ClipError when it holds no open_clip model."""
    path = spec[len(LOCAL_DIR_PREFIX):] if spec.startswith(LOCAL_DIR_PREFIX) else spec
    folder = Path(path).expanduser()
    if not (folder / "open_clip_config.json").is_file():
        raise ClipError(f"--clip {spec!r}: no open_clip model in {folder} (open_clip_config.json is missing); "
                        f"the trainer loads CLIP from a saved folder given as local-dir:PATH")
    return folder


class ClipScorer:
    """Cosine between images and texts, L2-normalised embeddings, batched; loaded on first use."""

    def __init__(self, spec: str, device: Any = None, batch_size: int = 64) -> None:
        self.spec = spec
        self.folder = clip_folder(spec)
        self.device = device
        self.batch_size = batch_size
        self._model = self._preprocess = self._tokenizer = None

    def _load(self) -> None:
        import open_clip
        import torch

        if self.device is None:
            self.device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        name = f"{LOCAL_DIR_PREFIX}{self.folder}"
        model, _, preprocess = open_clip.create_model_and_transforms(name, device=self.device)
        self._model, self._preprocess, self._tokenizer = model.eval(), preprocess, open_clip.get_tokenizer(name)

    def similarities(self, images: list, texts: list[str]) -> list[float]:
        """cosine(image_i, text_i) for each pair (PIL images, any size: CLIP's own preprocessing resizes)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images for {len(texts)} texts")
        if not images:
            return []
        if self._model is None:
            self._load()
        import torch

        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch_images = images[start:start + self.batch_size]
                pixels = torch.stack([self._preprocess(image.convert("RGB")) for image in batch_images])
                tokens = self._tokenizer(list(texts[start:start + self.batch_size]))
                image_features = self._model.encode_image(pixels.to(self.device), normalize=True).float()
                text_features = self._model.encode_text(tokens.to(self.device), normalize=True).float()
                out.extend((image_features * text_features).sum(-1).tolist())
        return out
