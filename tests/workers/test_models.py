"""Model specs, tiny test models, batched sampling with forced answers, and the built-ins' cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from workers.models.specs import ModelSpec, OpenAIEndpoint, SpecError, parse_spec, resolve_clip, resolve_vlm

ROOT = Path(__file__).resolve().parents[2]
CORRECT = "### The final answer is: red"


def _run_python(code: str, **env: str) -> dict:
    """Run `code` in a fresh interpreter (offline, repo on the path); it prints one JSON line last."""
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", "HF_HUB_OFFLINE": "1", **env}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _image(colour: str = "red") -> Image.Image:
    return Image.new("RGB", (112, 112), colour)


# ---- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen/Qwen2.5-VL-3B-Instruct", ModelSpec(kind="hub", text="Qwen/Qwen2.5-VL-3B-Instruct",
                                                  name="Qwen/Qwen2.5-VL-3B-Instruct")),
        ("hf:ViT-B-32/not-clip", ModelSpec(kind="hub", text="hf:ViT-B-32/not-clip", name="ViT-B-32/not-clip")),
        ("/models/qwen", ModelSpec(kind="local", text="/models/qwen", path="/models/qwen")),
        ("./models/qwen", ModelSpec(kind="local", text="./models/qwen", path="models/qwen")),
        ("openai:http://localhost:8000/v1#qwen2.5-vl", ModelSpec(
            kind="openai", text="openai:http://localhost:8000/v1#qwen2.5-vl",
            base_url="http://localhost:8000/v1", model="qwen2.5-vl")),
        ("ViT-B-32/laion2b_s34b_b79k", ModelSpec(kind="open_clip", text="ViT-B-32/laion2b_s34b_b79k",
                                                 name="ViT-B-32", pretrained="laion2b_s34b_b79k")),
        ("open_clip:RN50/openai", ModelSpec(kind="open_clip", text="open_clip:RN50/openai",
                                            name="RN50", pretrained="openai")),
        ("local-dir:/models/clip", ModelSpec(kind="open_clip_local", text="local-dir:/models/clip",
                                             path="/models/clip")),
        ("lookfirst:shapes-vlm", ModelSpec(kind="builtin", text="lookfirst:shapes-vlm", name="shapes-vlm")),
        ("lookfirst:shapes-clip", ModelSpec(kind="builtin", text="lookfirst:shapes-clip", name="shapes-clip")),
    ],
)
def test_parse_spec_every_kind(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize("text", ["", "qwen", "lookfirst:shapes-llm", "openai:localhost#m", "openai:http://h/v1",
                                  "a/b/c", "local-dir:"])
def test_unknown_spec_lists_the_accepted_forms(text):
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    message = str(caught.value)
    assert message.startswith(f"unknown model spec {text!r}")
    assert "'openai:URL#model'" in message and "'lookfirst:shapes-vlm'" in message and "local-dir:PATH" in message


def test_hub_id_offline_and_not_cached_is_a_clear_spec_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpecError) as caught:
        resolve_vlm("lookfirst-tests/no-such-vlm")
    assert str(caught.value) == (
        "model lookfirst-tests/no-such-vlm is not in the local cache and the hub cannot be reached (offline)"
    )
    assert isinstance(caught.value, ValueError)


def test_openai_spec_resolves_to_an_endpoint_without_loading():
    assert resolve_vlm("openai:http://gpu-box:8000/v1#qwen") == (OpenAIEndpoint("http://gpu-box:8000/v1", "qwen"), None)


def test_missing_local_folders_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="config.json is missing"):
        resolve_vlm(str(tmp_path))
    with pytest.raises(SpecError, match="open_clip_config.json is missing"):
        resolve_clip(f"local-dir:{tmp_path}")
    with pytest.raises(SpecError, match="not a CLIP model"):
        resolve_clip("openai:http://h/v1#m")


# ---- tiny VLM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    from workers.models.tiny import tiny_vlm

    return tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def tiny_loaded(tiny_vlm_dir):
    return resolve_vlm(str(tiny_vlm_dir))


def test_tiny_vlm_reloads_and_samples_in_a_new_process(tiny_vlm_dir):
    out = _run_python(f"""
        import json
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from workers.models.sampling import sample_answers
        model = AutoModelForImageTextToText.from_pretrained({str(tiny_vlm_dir)!r})
        processor = AutoProcessor.from_pretrained({str(tiny_vlm_dir)!r})
        img = Image.new("RGB", (112, 112), "blue")
        items = [("<image>What colour is the circle?", [img]), ("<image><image>How many?", [img, img])]
        answers = sample_answers(model, processor, items, n=3, temperature=1.2, top_p=0.99,
                                 max_new_tokens=6, seed=7)
        print(json.dumps({{"model": type(model).__name__, "processor": type(processor).__name__,
                           "video": type(processor.video_processor).__name__,
                           "shape": [len(a) for a in answers], "params": sum(p.numel() for p in model.parameters())}}))
    """)
    assert out["model"] == "Qwen2_5_VLForConditionalGeneration"
    assert out["processor"] == "Qwen2_5_VLProcessor"
    assert out["video"] == "Qwen2VLVideoProcessor"
    assert out["shape"] == [3, 3]
    assert out["params"] < 300_000


def test_prompts_are_left_padded_with_one_image_block_per_placeholder(tiny_loaded):
    from workers.models.sampling import chat_messages, encode_prompts

    _, processor = tiny_loaded
    assert chat_messages("<image>A<image>B", 2)[0]["content"] == [
        {"type": "image"}, {"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]
    items = [("<image>Short?", [_image()]), ("<image><image>A longer question?", [_image()] * 2)]
    enc = encode_prompts(processor, items)
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1  # padding on the left
    assert (enc["input_ids"][1] == image_pad).sum() == 32  # 112 x 112 -> 16 tokens per image
    assert processor.tokenizer.padding_side == "left"


def test_sampling_is_reproducible_for_a_seed(tiny_loaded):
    from workers.models.sampling import sample_answers

    model, processor = tiny_loaded
    items = [("<image>What colour?", [_image()])]
    kwargs = dict(n=4, temperature=1.2, top_p=0.99, max_new_tokens=5)
    first = sample_answers(model, processor, items, seed=3, **kwargs)
    assert sample_answers(model, processor, items, seed=3, **kwargs) == first


def test_forced_answers_give_exact_pass_rates(tiny_loaded):
    from workers.models.builtin import _grade
    from workers.models.sampling import sample_answers
    from workers.models.tiny import forced_answers_fn

    model, processor = tiny_loaded
    wrong = "### The final answer is: blue"
    forced = [
        [CORRECT, wrong, CORRECT, wrong, wrong, CORRECT, wrong, wrong],  # prompt 0: 3 of 8
        [CORRECT] * 8,  # prompt 1: 8 of 8
        [wrong, "no header at all", wrong, wrong, wrong, wrong, wrong, wrong],  # prompt 2: 0 of 8
    ]
    items = [("<image>What colour is the square?", [_image()]),
             ("<image><image>What colour are both?", [_image(), _image("green")]),
             ("<image>Colour?", [_image("blue")])]
    answers = sample_answers(model, processor, items, n=8, temperature=1.2, top_p=0.99, max_new_tokens=24,
                             seed=0, prefix_allowed_tokens_fn=forced_answers_fn(processor, forced), batch_size=2)
    assert answers == forced  # rows are prompt * 8 + sample, also across batches of 2 prompts
    assert [sum(_grade(r, "red") for r in rs) for rs in answers] == [3, 8, 0]


def test_generate_itself_passes_the_prompt_index_not_the_row(tiny_loaded):
    """Why sample_answers routes the function itself: transformers 5.24 treats the N samples as beams."""
    from workers.models.sampling import encode_prompts

    model, processor = tiny_loaded
    seen: set[int] = set()

    def record(batch_id, ids):
        seen.add(batch_id)
        return [processor.tokenizer.pad_token_id]

    enc = encode_prompts(processor, [("<image>A?", [_image()]), ("<image>B?", [_image()])])
    model.generate(**enc, do_sample=True, num_return_sequences=4, max_new_tokens=2,
                   prefix_allowed_tokens_fn=record, pad_token_id=processor.tokenizer.pad_token_id)
    assert seen == {0, 1}


# ---- tiny CLIP -----------------------------------------------------------------------------------


def test_tiny_clip_loads_via_local_dir_and_embeds(tmp_path):
    import torch

    from workers.models.tiny import tiny_clip

    folder = tiny_clip(tmp_path / "clip")
    model, preprocess, tokenizer = resolve_clip(f"local-dir:{folder}")
    with torch.no_grad():
        image = model.encode_image(preprocess(_image()).unsqueeze(0), normalize=True)
        text = model.encode_text(tokenizer(["a large red circle on a white background."]), normalize=True)
    assert image.shape == text.shape == (1, 64)
    assert torch.allclose(image.norm(dim=-1), torch.ones(1), atol=1e-5)


# ---- built-ins -----------------------------------------------------------------------------------


def test_grading_reads_the_text_after_the_answer_header():
    from workers.models.builtin import _grade, extract_answer, pebr_response

    response = pebr_response("A large red circle on a white background.", "Find the circle.",
                             "Read the colour of the circle.", "Red, 2.")
    assert extract_answer(response) == "Red, 2."
    assert _grade(response, "red, 2") and _grade(response, "red,2")
    assert not _grade(response, "red") and not _grade("red, 2", "red, 2")


def test_short_layout_targets_drop_the_middle_sections_and_keep_the_answer():
    import random

    from workers.models.builtin import _draw_text, extract_answer, short_layout

    _, question, full = _draw_text(random.Random(5), "more_than", full=True)
    _, same_question, short = _draw_text(random.Random(5), "more_than", full=False)
    description = ("A large purple hexagon, a large green square, a large orange square, a small purple circle, "
                   "a small green circle and a small red pentagon on a white background.")
    assert question == same_question == "<image>How many more pentagons than triangles are there?"
    assert full == (f"### Image Description: {description}\n### Rationales: Count the pentagons and the triangles.\n"
                    "### Step 1: Subtract the counts.\n### The final answer is: 1")
    assert short == short_layout(full) == f"### Image Description: {description}\n### The final answer is: 1"
    assert extract_answer(short) == extract_answer(full) == "1"


def test_training_batches_hold_the_short_layout_share_exactly_and_evenly():
    import random

    from workers.models.builtin import (
        HEADERS, VLM_BATCH, VLM_BUCKETS, VLM_OFF_LAYOUT_SHARE, _full_layout_flags, _pick, _tokenizer_corpus,
        extract_answer, training_batches, training_mix,
    )

    assert VLM_OFF_LAYOUT_SHARE == 0.45
    rng = random.Random(0)
    mix = training_mix()
    batches = training_batches(rng, [_pick(rng, mix) for _ in range(VLM_BATCH * VLM_BUCKETS)])
    short = [[r for _, _, r in batch if not all(h in r for h in HEADERS)] for batch in batches]
    assert [len(batch) for batch in batches] == [16, 16, 16, 16]
    assert [len(s) for s in short] == [7, 7, 7, 8]  # round(0.45 * 64) = 29, spread over the batches
    assert all(r.count("###") == 2 and r.startswith("### Image Description: ") for s in short for r in s)
    assert all(extract_answer(r) for s in short for r in s)
    assert _full_layout_flags(random.Random(0), 10) == [True, True, False, True, False, True, False, False, True, True]
    corpus = _tokenizer_corpus(random.Random(1))  # the BPE sees the same share: 1350 of 3000
    assert (len(corpus), sum("### Rationales:" not in text for text in corpus[2:])) == (3002, 1350)


def _fake_build(name: str, recipe: dict, weights: str, calls: list):
    def build(tmp: Path) -> dict:
        tmp.mkdir()
        (tmp / "weights").write_text(weights)
        calls.append(weights)
        return {"name": name, "recipe": {**recipe, "seconds_budget": 3.0, "max_steps": None}}

    return build


def test_a_build_of_another_recipe_is_trained_again_not_loaded(tmp_path):
    from workers.models.builtin import BUILD_INFO, _build_atomically, build_info, is_built, vlm_recipe

    models = tmp_path / "models"
    folder = models / "shapes-vlm"
    calls: list[str] = []
    _build_atomically(folder, _fake_build("shapes-vlm", {**vlm_recipe(), "off_layout_share": 0.0}, "old", calls))
    assert (folder / BUILD_INFO).is_file() and not is_built(folder)

    assert _build_atomically(folder, _fake_build("shapes-vlm", vlm_recipe(), "new", calls)) == folder
    assert is_built(folder) and (folder / "weights").read_text() == "new"
    assert build_info(folder)["recipe"]["off_layout_share"] == 0.45
    assert [p.name for p in models.iterdir()] == ["shapes-vlm"]  # the old build and temp folders are gone
    assert _build_atomically(folder, _fake_build("shapes-vlm", vlm_recipe(), "again", calls)) == folder
    assert calls == ["old", "new"] and (folder / "weights").read_text() == "new"  # today's recipe loads


def test_ensure_builtin_rebuilds_a_cached_build_of_an_older_recipe(tmp_path, monkeypatch):
    import workers.models.builtin as builtin

    monkeypatch.setenv("LOOKFIRST_HOME", str(tmp_path))
    folder = tmp_path / "models" / "shapes-clip"
    old = {key: value for key, value in builtin.clip_recipe().items() if key != "warmup_steps"}
    builtin._build_atomically(folder, _fake_build("shapes-clip", old, "old", []))
    rebuilt: list[Path] = []
    monkeypatch.setattr(builtin, "build_shapes_clip", lambda f, progress=None: rebuilt.append(f) or f)
    assert builtin.ensure_builtin("shapes-clip") == folder and rebuilt == [folder]
    monkeypatch.setattr(builtin, "build_shapes_vlm", lambda f, progress=None: rebuilt.append(f) or f)
    vlm = tmp_path / "models" / "shapes-vlm"
    builtin._build_atomically(vlm, _fake_build("shapes-vlm", builtin.vlm_recipe(), "current", []))
    assert builtin.ensure_builtin("shapes-vlm") == vlm and rebuilt == [folder]  # current: loaded, not rebuilt


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    from workers.models.builtin import _build_atomically

    def failing(tmp: Path) -> dict:
        tmp.mkdir()
        (tmp / "half-written").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        _build_atomically(tmp_path / "models" / "shapes-vlm", failing)
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.slow
def test_builtins_build_then_load_from_the_cache_in_a_new_process(tmp_path):
    from workers.models.builtin import BUILD_INFO, build_info, build_shapes_clip, build_shapes_vlm

    models = tmp_path / "models"
    seen: list[float] = []
    vlm = build_shapes_vlm(models / "shapes-vlm", progress=lambda f, m: seen.append(f), seconds_budget=3)
    clip = build_shapes_clip(models / "shapes-clip", seconds_budget=3)
    assert build_info(vlm)["steps"] >= 1 and build_info(clip)["steps"] >= 1
    assert build_info(vlm)["recipe"]["off_layout_share"] == 0.45  # in the recipe the cache compares
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []  # temp folders renamed
    stamp = (vlm / BUILD_INFO).stat().st_mtime_ns
    assert build_shapes_vlm(vlm, seconds_budget=3) == vlm  # a second call loads, never retrains
    assert (vlm / BUILD_INFO).stat().st_mtime_ns == stamp

    out = _run_python("""
        import json, time
        import torch
        from PIL import Image
        import workers.models.builtin as builtin
        builtin.build_shapes_vlm = builtin.build_shapes_clip = None  # a build attempt would fail loudly
        from workers.models.specs import resolve_clip, resolve_vlm
        from workers.models.sampling import sample_answers
        t0 = time.monotonic()
        model, processor = resolve_vlm("lookfirst:shapes-vlm")
        clip, preprocess, tokenizer = resolve_clip("lookfirst:shapes-clip")
        seconds = time.monotonic() - t0
        img = Image.new("RGB", (112, 112), "white")
        answers = sample_answers(model, processor, [("<image>What colour is the circle?", [img])], n=2,
                                 temperature=1.2, top_p=0.99, max_new_tokens=4, seed=0)
        with torch.no_grad():
            emb = clip.encode_image(preprocess(img).unsqueeze(0))
        print(json.dumps({"model": type(model).__name__, "answers": len(answers[0]), "clip_dim": emb.shape[-1],
                          "mean": processor.image_processor.image_mean, "seconds": seconds}))
    """, LOOKFIRST_HOME=str(tmp_path))
    assert out["model"] == "Qwen2_5_VLForConditionalGeneration"
    assert out["answers"] == 2 and out["clip_dim"] == 128
    assert out["mean"] == [1.0, 1.0, 1.0]
    assert out["seconds"] < 30


def test_builtin_doctests():
    import doctest

    import workers.models.builtin as builtin

    result = doctest.testmod(builtin)
    assert (result.failed, result.attempted) == (0, 3)
