"""Load the policy VLM from --model SPEC: a saved folder (model + processor) or a Hugging Face hub id.

`check_model_spec` is cheap (no torch) so `trainer run` refuses a bad spec before any stage starts;
`load_vlm` does the loading inside a stage process. A hub id that is neither cached nor reachable gives
ModelError("... is not in the local cache and the hub cannot be reached (offline)"), never a long retry.
The platform resolves its built-in names (lookfirst:...) to folders before calling the trainer.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

_HUB_ID = re.compile(r"^(?:hf:)?[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
VISION_MODULES = re.compile(r"(?:^|\.)(?:visual|vision_tower|vision_model)\.")  # Qwen-VL, LLaVA, Idefics names


class ModelError(ValueError):
    """A --model spec that cannot be loaded; the message is meant for the user."""


def _folder(spec: str) -> Path | None:
    path = Path(spec).expanduser()
    return path if path.exists() or spec.startswith(("/", "./", "../", "~")) else None


def check_model_spec(spec: str) -> tuple[str, bool]:
    """(source for from_pretrained, local_files_only); ModelError when the model cannot be had."""
    folder = _folder(spec)
    if folder is not None:
        if not (folder / "config.json").is_file():
            raise ModelError(f"--model {spec}: no saved model in {folder} (config.json is missing)")
        return str(folder.resolve()), True
    if not _HUB_ID.match(spec):
        raise ModelError(f"--model {spec!r} is neither an existing folder nor a hub id 'org/name'")
    repo_id = spec.removeprefix("hf:")
    offline = _offline() or not _hub_reachable()
    if offline and not _hub_cached(repo_id):
        raise ModelError(f"model {repo_id} is not in the local cache and the hub cannot be reached (offline)")
    return repo_id, offline


def _offline() -> bool:
    return any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub (huggingface_hub itself would retry for ~30 s)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def load_vlm(spec: str) -> tuple[Any, Any]:
    """(model in float32, processor with left padding) for a spec that passed `check_model_spec`.

    float32 master weights: mixed precision (precision: bf16) autocasts the compute, as EasyR1 does.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    source, local_only = check_model_spec(spec)
    try:
        processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32, local_files_only=local_only)
    except OSError as exc:
        raise ModelError(f"--model {spec}: could not be loaded: {exc}") from exc
    processor.tokenizer.padding_side = "left"  # batched generation needs left padding
    return model, processor


def freeze_vision_tower(model: Any) -> int:
    """Stop gradients to the vision encoder and its merger/projector; returns the number of frozen tensors."""
    frozen = 0
    for name, parameter in model.named_parameters():
        if VISION_MODULES.search(name):
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def weights_digest(model: Any) -> str:
    """sha256 over every parameter's name and raw bytes (tied weights once), in name order.

    Equal digests mean bit-identical weights: used to show a stage started from the previous stage's save.
    """
    import torch

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters(), key=lambda item: item[0]):
        digest.update(name.encode())
        tensor = parameter.detach().to("cpu").contiguous().view(-1)
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
