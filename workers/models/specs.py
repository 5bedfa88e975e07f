"""Model specs: one parser and one resolver, used by scoring and training alike.

A spec is a short string naming a model:

    Qwen/Qwen2.5-VL-3B-Instruct          hub      Hugging Face hub id (AutoModelForImageTextToText)
    /abs/path  ./rel/path  ~/path        local    a saved model + processor folder (or any existing
                                                  folder: like transformers, a folder wins over a hub id)
    openai:http://host:8000/v1#my-model  openai   an OpenAI-compatible endpoint (nothing is loaded)
    ViT-B-32/laion2b_s34b_b79k           open_clip  open_clip architecture / pretrained tag
    local-dir:/path/to/clip              open_clip_local  a saved open_clip folder
    lookfirst:shapes-vlm                 builtin  small models trained here on first use, then cached
    lookfirst:shapes-clip                         under $LOOKFIRST_HOME/models/<name>/ (default ~/.lookfirst)

Parsing imports nothing heavy; torch, transformers and open_clip load inside the resolvers.
Every failure a user can cause (bad spec, missing folder, model not cached while offline) raises
`SpecError` with a message meant to be shown as is.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("hub", "local", "openai", "open_clip", "open_clip_local", "builtin")
BUILTINS = {"shapes-vlm": "vlm", "shapes-clip": "clip"}
BUILTIN_PREFIX = "lookfirst:"
OPENAI_PREFIX = "openai:"
LOCAL_DIR_PREFIX = "local-dir:"
OPEN_CLIP_PREFIX = "open_clip:"
HUB_PREFIX = "hf:"

ACCEPTED_FORMS = (
    "a Hugging Face hub id 'org/name' (or 'hf:org/name')",
    "a local folder path (absolute, './...', '../...' or '~/...')",
    "'openai:URL#model' for an OpenAI-compatible endpoint",
    "an open_clip 'ARCH/PRETRAINED' such as 'ViT-B-32/laion2b_s34b_b79k' (or 'open_clip:ARCH/PRETRAINED')",
    "'local-dir:PATH' for a saved open_clip folder",
    "a built-in: " + ", ".join(f"'{BUILTIN_PREFIX}{name}'" for name in BUILTINS),
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

Progress = Callable[[float, str], None]


class SpecError(ValueError):
    """A model spec that cannot be parsed or resolved; the message is meant for the user."""


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # one of KINDS
    text: str  # the spec as written
    name: str = ""  # hub id, open_clip architecture, or built-in name
    pretrained: str = ""  # open_clip pretrained tag
    path: str = ""  # local folder (local, open_clip_local)
    base_url: str = ""  # openai
    model: str = ""  # openai model name


@dataclass(frozen=True)
class OpenAIEndpoint:
    """An OpenAI-compatible chat endpoint; sampling goes over HTTP, nothing is loaded here."""

    base_url: str
    model: str


def lookfirst_home() -> Path:
    return Path(os.environ.get("LOOKFIRST_HOME") or "~/.lookfirst").expanduser()


def builtin_folder(name: str) -> Path:
    """Where built-in `name` is cached: $LOOKFIRST_HOME/models/<name>/."""
    return lookfirst_home() / "models" / name


def _open_clip_architectures() -> set[str]:
    """open_clip's built-in architecture names, read from its config folder without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return set()
    folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return {p.stem for p in folder.glob("*.json")}


def _unknown(text: str, why: str = "") -> SpecError:
    forms = "\n".join(f"  - {form}" for form in ACCEPTED_FORMS)
    return SpecError(f"unknown model spec {text!r}{': ' + why if why else ''}. Accepted forms:\n{forms}")


def _open_clip_spec(text: str, body: str) -> ModelSpec:
    arch, _, pretrained = body.partition("/")
    if not arch or not pretrained:
        raise _unknown(text, "open_clip specs are ARCH/PRETRAINED")
    return ModelSpec(kind="open_clip", text=text, name=arch, pretrained=pretrained)


def parse_spec(text: str) -> ModelSpec:
    """Parse a model spec string (see the module docstring); raises SpecError listing accepted forms.

    >>> parse_spec("openai:http://localhost:8000/v1#qwen").model
    'qwen'
    >>> parse_spec("ViT-B-32/laion2b_s34b_b79k").kind
    'open_clip'
    >>> parse_spec("Qwen/Qwen2.5-VL-3B-Instruct").kind
    'hub'
    """
    if not isinstance(text, str) or not text.strip():
        raise _unknown(str(text), "empty")
    text = text.strip()
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :]
        if name not in BUILTINS:
            raise _unknown(text, f"no built-in named {name!r}")
        return ModelSpec(kind="builtin", text=text, name=name)
    if text.startswith(OPENAI_PREFIX):
        url, sep, model = text[len(OPENAI_PREFIX) :].rpartition("#")
        if not sep or not url.startswith(("http://", "https://")) or not model:
            raise _unknown(text, "openai specs are openai:http(s)://HOST/...#MODEL")
        return ModelSpec(kind="openai", text=text, base_url=url, model=model)
    if text.startswith(LOCAL_DIR_PREFIX):
        path = text[len(LOCAL_DIR_PREFIX) :]
        if not path:
            raise _unknown(text, "local-dir: needs a path")
        return ModelSpec(kind="open_clip_local", text=text, path=str(Path(path).expanduser()))
    if text.startswith(OPEN_CLIP_PREFIX):
        return _open_clip_spec(text, text[len(OPEN_CLIP_PREFIX) :])
    if text.startswith(HUB_PREFIX):
        hub_id = text[len(HUB_PREFIX) :]
        if not _HUB_ID.match(hub_id):
            raise _unknown(text, "hub ids are org/name")
        return ModelSpec(kind="hub", text=text, name=hub_id)
    if text.startswith(("/", "./", "../", "~")) or text in (".", "..") or Path(text).is_dir():
        return ModelSpec(kind="local", text=text, path=str(Path(text).expanduser()))
    if _HUB_ID.match(text):
        if text.split("/", 1)[0] in _open_clip_architectures():
            return _open_clip_spec(text, text)
        return ModelSpec(kind="hub", text=text, name=text)
    raise _unknown(text)


def _as_spec(spec: ModelSpec | str) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else parse_spec(spec)


# --- the hub ------------------------------------------------------------------------------------


def _offline_flag() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    env = any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A fast DNS + TCP probe of the hub endpoint (huggingface_hub would retry for ~30 s)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str, filenames: tuple[str, ...] = ("config.json",)) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def _not_cached(repo_id: str) -> SpecError:
    return SpecError(f"model {repo_id} is not in the local cache and the hub cannot be reached (offline)")


def _check_hub(repo_id: str, filenames: tuple[str, ...] = ("config.json",)) -> bool:
    """Raise the clear SpecError when `repo_id` cannot be had; else whether to load from the cache only."""
    offline = _offline_flag() or not _hub_reachable()
    if offline and not _hub_cached(repo_id, filenames):
        raise _not_cached(repo_id)
    return offline


# --- VLMs ---------------------------------------------------------------------------------------


def _load_vlm_folder(source: str, local_files_only: bool, dtype: Any, device: Any):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs = {"local_files_only": local_files_only}
    processor = AutoProcessor.from_pretrained(source, **kwargs)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype or torch.float32, **kwargs)
    if device is not None:
        model = model.to(device)
    return model.eval(), processor


def resolve_vlm(
    spec: ModelSpec | str, device: Any = None, dtype: Any = None, progress: Progress | None = None
) -> tuple[Any, Any]:
    """(model, processor) for a VLM spec; for "openai:" specs, (OpenAIEndpoint, None).

    Built-ins are built on first use (minutes; `progress(fraction, message)` reports) and cached.
    """
    spec = _as_spec(spec)
    if spec.kind == "openai":
        return OpenAIEndpoint(base_url=spec.base_url, model=spec.model), None
    if spec.kind == "builtin":
        if BUILTINS[spec.name] != "vlm":
            raise SpecError(f"{spec.text} is a CLIP model, not a VLM")
        from workers.models.builtin import ensure_builtin

        return _load_vlm_folder(str(ensure_builtin(spec.name, progress=progress)), True, dtype, device)
    if spec.kind == "local":
        folder = Path(spec.path)
        if not (folder / "config.json").is_file():
            raise SpecError(f"no saved model in folder {folder} (config.json is missing)")
        return _load_vlm_folder(str(folder), True, dtype, device)
    if spec.kind == "hub":
        offline = _check_hub(spec.name)
        try:
            return _load_vlm_folder(spec.name, offline, dtype, device)
        except OSError as exc:
            if not _hub_cached(spec.name):
                raise _not_cached(spec.name) from exc
            raise SpecError(f"model {spec.name} could not be loaded: {exc}") from exc
    raise SpecError(f"{spec.text} is a CLIP spec ({spec.kind}), not a VLM")


# --- CLIP ---------------------------------------------------------------------------------------


def _load_open_clip(name: str, pretrained: str | None, device: Any):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    return model.eval(), preprocess, tokenizer


def _load_clip_folder(folder: Path, device: Any):
    if not (folder / "open_clip_config.json").is_file():
        raise SpecError(f"no saved open_clip model in folder {folder} (open_clip_config.json is missing)")
    return _load_open_clip(f"{LOCAL_DIR_PREFIX}{folder}", None, device)


def resolve_clip(spec: ModelSpec | str, device: Any = None, progress: Progress | None = None) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) for an open_clip spec, in eval mode.

    `preprocess` maps a PIL image to a tensor; `tokenizer(list_of_texts)` to token ids.
    """
    spec = _as_spec(spec)
    if spec.kind == "builtin":
        if BUILTINS[spec.name] != "clip":
            raise SpecError(f"{spec.text} is a VLM, not a CLIP model")
        from workers.models.builtin import ensure_builtin

        return _load_clip_folder(ensure_builtin(spec.name, progress=progress), device)
    if spec.kind in ("open_clip_local", "local"):
        return _load_clip_folder(Path(spec.path), device)
    if spec.kind == "open_clip":
        from open_clip.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.name, spec.pretrained)
        if not cfg and not os.path.isfile(spec.pretrained):
            raise SpecError(f"open_clip has no pretrained weights {spec.pretrained!r} for {spec.name}")
        hub_id = cfg.get("hf_hub", "").rstrip("/") if cfg else ""
        weights = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        if hub_id:
            _check_hub(hub_id, weights)
        try:
            return _load_open_clip(spec.name, spec.pretrained, device)
        except RuntimeError as exc:
            if hub_id and not _hub_cached(hub_id, weights):
                raise _not_cached(hub_id) from exc
            raise SpecError(f"open_clip model {spec.text} could not be loaded: {exc}") from exc
    raise SpecError(f"{spec.text} is a {spec.kind} spec, not a CLIP model")
