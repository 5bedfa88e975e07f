"""Recipe configs (trainer/config.py): anchor defaults, every YAML in trainer/configs, refusals."""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path

import pytest

from trainer import config as config_module
from trainer.config import (
    RECIPE_STAGES,
    RECIPES,
    CapCurriculumConfig,
    ConfigError,
    MergedConfig,
    PebrConfig,
    batch_plan,
    describe,
    from_dict,
    load_config,
    stage_reward,
    yaml_recipes,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "trainer" / "configs"
YAMLS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_every_yaml_in_the_repo_loads_and_validates(path):
    recipes = yaml_recipes(path)
    assert recipes
    for recipe in recipes:
        config = load_config(recipe, path)
        assert isinstance(config, RECIPES[recipe])


def test_the_repo_ships_the_cpu_configs():
    assert {"cpu-tiny.yaml", "cpu-demo.yaml"} <= {p.name for p in YAMLS}
    tiny = load_config("pebr-2stage", CONFIG_DIR / "cpu-tiny.yaml")
    assert tiny.max_steps <= 4 and 2 <= tiny.num_generations <= 4 and 16 <= tiny.max_completion_length <= 32
    demo = load_config("pebr-2stage", CONFIG_DIR / "cpu-demo.yaml")
    assert 20 <= demo.max_steps <= 40


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_field_has_help_and_a_reason(recipe):
    for f in dataclasses.fields(RECIPES[recipe]):
        assert len(f.metadata.get("help", "")) > 10, f.name
        assert len(f.metadata.get("why", "")) > 10, f.name
        assert f.name in describe(recipe)


def test_pebr_defaults_are_the_anchor_settings():
    c = PebrConfig()
    assert (c.num_generations, c.temperature, c.top_p, c.beta) == (8, 1.2, 0.99, 1e-2)
    assert (c.learning_rate, c.weight_decay, c.max_prompt_length, c.max_completion_length) == (1e-6, 1e-2, 2048, 2048)
    assert c.epochs == {"perception": 1.0, "reasoning": 2.0}
    assert c.freeze_vision_tower_stages == []  # vision tower trainable
    assert c.use_lora is False and c.use_vllm is False


def test_capcurriculum_defaults_are_the_anchor_settings():
    c = CapCurriculumConfig()
    assert (c.num_generations, c.temperature, c.beta, c.learning_rate) == (5, 1.0, 1e-2, 1e-6)
    assert (c.global_batch_prompts, c.rollout_batch_prompts, c.max_completion_length) == (128, 512, 2048)
    assert c.epochs == {"perception": 16.0, "textual_reasoning": 15.0, "visual_reasoning": 15.0}
    assert c.freeze_vision_tower_stages == ["textual_reasoning"]
    assert c.shuffle is False  # the export's easy -> hard order is the curriculum


def test_merged_is_the_baseline_with_the_reasoning_reward():
    c = MergedConfig()
    assert c.epochs == {"merged": 1.0} and c.reward_style == "pebr"
    assert stage_reward("merged", "merged", c) == "pebr_reasoning"
    assert stage_reward("merged", "merged", MergedConfig(reward_style="capcurriculum")) == "capcurriculum"
    assert stage_reward("pebr-2stage", "perception", PebrConfig()) == "pebr_perception"
    assert stage_reward("pebr-2stage", "reasoning", PebrConfig()) == "pebr_reasoning"
    assert {stage_reward("capcurriculum-3stage", s, CapCurriculumConfig())
            for s in RECIPE_STAGES["capcurriculum-3stage"]} == {"capcurriculum"}


def test_batch_plan_turns_prompt_batches_into_trl_numbers():
    # CapCurriculum on 8 GPUs, 8 completions per micro-batch: 128 x 5 = 640 completions per optimizer step.
    plan = batch_plan(CapCurriculumConfig(), world_size=8)
    assert plan == {"gradient_accumulation_steps": 10, "steps_per_generation": 40, "generation_batch_size": 2560}
    assert batch_plan(PebrConfig(), world_size=1)["gradient_accumulation_steps"] == 128


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("num_generation: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'num_generation'.*did you mean 'num_generations'"):
        load_config("pebr-2stage", path)


def test_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: fast\n")
    with pytest.raises(ConfigError, match="learning_rate = 'fast' is not a float"):
        load_config("merged", path)
    with pytest.raises(ConfigError, match="is not a bool"):
        from_dict("merged", {"use_lora": 1})


@pytest.mark.parametrize(("values", "message"), [
    ({"num_generations": 1}, "num_generations must be >= 2"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"top_p": 1.5}, "top_p"),
    ({"rollout_batch_prompts": 100, "global_batch_prompts": 64}, "multiple of global_batch_prompts"),
    ({"per_device_train_batch_size": 3}, "multiple of per_device_train_batch_size"),
    ({"epochs": {"perception": 1}}, "epochs must give a positive number for exactly the stages"),
    ({"epochs": {"perception": 1, "reasoning": 0}}, "epochs must give a positive number"),
    ({"freeze_vision_tower_stages": ["vision"]}, "freeze_vision_tower_stages names"),
    ({"label_free_reward": "vote"}, "label_free_reward = 'vote' is not one of"),
    ({"max_steps": 0}, "max_steps must be -1"),
])
def test_impossible_settings_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict("pebr-2stage", values)


def test_a_yaml_can_be_restricted_to_recipes(tmp_path):
    path = tmp_path / "caps.yaml"
    path.write_text("recipe: capcurriculum-3stage\n"
                    "epochs: {perception: 1, textual_reasoning: 1, visual_reasoning: 2}\n")
    assert yaml_recipes(path) == ["capcurriculum-3stage"]
    assert load_config("capcurriculum-3stage", path).epochs["visual_reasoning"] == 2
    with pytest.raises(ConfigError, match="is for recipe"):
        load_config("pebr-2stage", path)


def test_vllm_without_vllm_installed_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ConfigError, match="vLLM is not installed"):
        from_dict("pebr-2stage", {"use_vllm": True})


def test_module_doctests():
    from trainer import evaluate, export, reward_funcs, stage

    for module in (config_module, reward_funcs, stage, evaluate, export):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
