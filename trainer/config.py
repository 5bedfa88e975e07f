"""One config dataclass per recipe, defaults = the anchors' published settings (science.md).

    PebrConfig            pebr-2stage           perception -> reasoning             (PeBR-R1, arXiv 2509.13031)
    CapCurriculumConfig   capcurriculum-3stage  perception -> textual -> visual     (arXiv 2605.20177)
    MergedConfig          merged                one stage, the reasoning reward     (the baseline staging beats)

Every field carries `help` (what it does) and `why` (where its default comes from); `python -m trainer config
RECIPE` prints them. Fields the two anchors share because both run EasyR1's GRPO defaults (loss
aggregation, clipping, schedule) and plain run settings (checkpointing, LoRA, vLLM, eval) live in `Shared`;
every number the anchors chose themselves is repeated in each recipe class with its own reason, so one
class reads as the whole recipe.

YAML files (trainer/configs/*.yaml) override fields by name; an unknown key or a wrong type is an error
naming the file and the key. A YAML may hold `recipe: NAME` (or a list) to say which recipes it is for.

Batch sizes are in PROMPTS, as EasyR1 states them: each optimizer step sees `global_batch_prompts` prompts x
`num_generations` completions, and one generation round samples `rollout_batch_prompts` prompts (so
rollout / global optimizer steps reuse one round, as EasyR1 does). `batch_plan` turns that into TRL's
per-device numbers (per_device_train_batch_size counts completions in TRL).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECIPE_STAGES: dict[str, tuple[str, ...]] = {
    "pebr-2stage": ("perception", "reasoning"),
    "capcurriculum-3stage": ("perception", "textual_reasoning", "visual_reasoning"),
    "merged": ("merged",),
}

# The instruction appended to each prompt so a model knows the layout its format reward checks. A prompt that
# already contains the layout's marker (e.g. the platform wrote the instruction) is left as it is.
PEBR_FORMAT_PROMPT = (
    "Answer in this layout: '### Image Description:' (what the image shows), '### Rationales:' (what the "
    "question needs), '### Step 1:' (and further steps), then '### The final answer is:' and the answer only."
)
PEBR_FORMAT_MARKER = "### The final answer is:"
# EasyR1's examples/format_prompt/math.jinja, which CapCurriculum trains with.
CAPCURRICULUM_FORMAT_PROMPT = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \\boxed{}."
)
CAPCURRICULUM_FORMAT_MARKER = "\\boxed"


class ConfigError(ValueError):
    """A config that cannot run; the message names the file and key when there is one."""


def option(default: Any, help: str, why: str, choices: tuple | None = None) -> Any:
    """A dataclass field with help text, the reason for its default and (optionally) the allowed values."""
    metadata = {"help": help, "why": why, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Shared:
    """Settings both anchors take from EasyR1's defaults, and run settings that are not the anchors' choice."""

    # --- GRPO algorithm: EasyR1 defaults, used unchanged by PeBR-R1 and CapCurriculum
    loss_type: str = option(
        "dapo", "How per-token losses are averaged (TRL loss_type).",
        "EasyR1's loss_avg_mode 'token' averages over all tokens of the update batch, which is TRL's 'dapo'.",
        ("dapo", "grpo", "dr_grpo", "bnpo"))
    epsilon: float = option(
        0.2, "Lower PPO clip range of the importance ratio.",
        "The PPO/GRPO standard; science.md does not list the anchors' clip ratios.")
    epsilon_high: float | None = option(
        None, "Upper clip range; None = epsilon (symmetric clipping).",
        "Symmetric clipping unless a recipe says otherwise (DAPO's clip-higher is 0.28).")
    scale_rewards: str = option(
        "group", "Advantage normalisation: 'group' divides by the group's std (GRPO), 'batch', or 'none'.",
        "GRPO as EasyR1 runs it (advantage = (r - mean) / std within the group).", ("group", "batch", "none"))
    lr_scheduler_type: str = option(
        "constant", "Learning-rate schedule (transformers name).",
        "EasyR1 keeps the learning rate constant (no warm-up, no decay) in RL.")
    warmup_steps: float = option(
        0.0, "Warm-up steps (a value below 1 is a fraction of the stage's steps).", "EasyR1: no warm-up.")
    max_grad_norm: float = option(1.0, "Gradient clipping by global norm.", "EasyR1's default max_grad_norm.")
    num_iterations: int = option(
        1, "Optimisation passes over each generated batch (GRPO's mu).", "EasyR1's ppo_epochs = 1.")

    # --- batch layout on the machine (does not change what an optimizer step sees)
    per_device_train_batch_size: int = option(
        8, "Completions per forward/backward micro-batch on one device.",
        "A memory knob only: the optimizer step always sees global_batch_prompts x num_generations "
        "completions (gradient accumulation makes up the rest). Lower it on out-of-memory.")
    max_steps: int = option(
        -1, "Optimizer steps per stage; -1 = run the stage's epochs.",
        "The anchors train by epochs; set it for short runs or to match step counts between recipes.")

    # --- checkpoints, cancel and resume
    logging_steps: int = option(1, "Log metrics every N optimizer steps.",
                                "Every step: RL metrics are noisy and cheap to write next to a GRPO step.")
    save_steps: int = option(
        50, "Write a resumable checkpoint (model + optimizer + RNG) every N steps; 0 = only on cancel.",
        "Bounds lost work after a crash to 50 steps; a cancel always checkpoints at once.")
    save_total_limit: int = option(1, "Checkpoints kept per stage.",
                                   "Resume needs only the newest, and full checkpoints of a VLM are large.")
    keep_checkpoints: bool = option(
        False, "Keep a finished stage's checkpoints/ folder.",
        "The next stage starts from <stage>/model/, never from a checkpoint, so they are only disk use.")
    seed: int = option(1, "Random seed for sampling, data order and initialisation of LoRA.",
                       "Any fixed value: it makes a run repeatable.")
    weight_digests: bool = option(
        True, "Record a sha256 of the weights at the start and end of each stage in stage.json.",
        "Proves that a stage started from the previous stage's saved weights; switch off under FSDP or "
        "ZeRO-3, where a process does not hold the full weights.")

    # --- numerics and memory
    precision: str = option(
        "auto", "'bf16' (mixed precision, fp32 master weights), 'fp32', or 'auto' (bf16 on a GPU that has it).",
        "EasyR1 trains in bf16 with fp32 master weights on GPUs; on CPUs bf16 measured 1.6-2.4x slower.",
        ("auto", "bf16", "fp32"))
    cpu_threads: int | None = option(
        None, "torch.set_num_threads in each stage process; None = torch's default (all cores).",
        "More threads help large models on free cores; tiny models on busy shared cores ran 7x faster on one.")
    gradient_checkpointing: bool = option(
        True, "Recompute activations in the backward pass.",
        "Prompt + response reach 4096 tokens with the anchors' lengths; this trades ~30% time for memory.")

    # --- LoRA (off in both anchors: they train all weights)
    use_lora: bool = option(False, "Train LoRA adapters instead of all weights; merged into the model at save.",
                            "Both anchors train full weights; LoRA is for small GPUs.")
    lora_r: int = option(64, "Rank of the LoRA update matrices.",
                         "A common rank for 3-7B VLMs; raise it if rewards plateau early.")
    lora_alpha: int = option(128, "LoRA scaling alpha.", "2 x rank, the usual ratio.")
    lora_dropout: float = option(0.05, "Dropout on the LoRA path.", "peft's usual small value.")
    lora_target_modules: str = option(
        "all-linear", "Modules that get adapters (peft target_modules).",
        "Every linear layer, language and (unless frozen in the stage) vision, like full training.")

    # --- generation backend
    use_vllm: bool = option(
        False, "Generate completions with vLLM (must be installed; CUDA only).",
        "Off: transformers generate works everywhere; vLLM is much faster for long responses on GPUs.")
    vllm_mode: str = option(
        "colocate", "'colocate' (vLLM shares the training GPUs) or 'server' (`trl vllm-serve` elsewhere).",
        "Colocate needs no second process.", ("colocate", "server"))
    vllm_gpu_memory_utilization: float = option(
        0.3, "Share of GPU memory vLLM may take in colocate mode.", "Leaves the rest to training.")

    # --- rewards for items without an answer
    label_free_reward: str = option(
        "majority_vote", "Reward for unlabelled items in reasoning stages: 'majority_vote' (TTRL, MM-UPT), "
        "'empo' (class size / G) or 'skip' (drop unlabelled items from training).",
        "Majority vote is the simplest label-free reward that works (science.md); pair it with a labelled set.",
        ("majority_vote", "empo", "skip"))

    # --- evaluation on the export's held-out split after each stage
    eval_max_new_tokens: int | None = option(
        None, "Tokens generated per eval item; None = max_completion_length.", "Eval sees what training saw.")
    eval_batch_size: int = option(16, "Prompts per generate call in eval.",
                                  "Batched left-padded sampling is ~7x faster than one prompt at a time.")
    eval_max_items: int | None = option(None, "Evaluate only the first N held-out items; None = all.",
                                        "The held-out split is already small (eval_fraction of the pool).")

    report_to: list = option([], "Extra loggers for transformers (e.g. ['wandb']); metrics.jsonl is always written.",
                             "No network service is assumed.")


@dataclass
class PebrConfig(Shared):
    """PeBR-R1: GRPO on Easy items with a perception reward, then on Medium items with an accuracy reward."""

    num_generations: int = option(8, "Completions sampled per prompt (the GRPO group G).", "PeBR-R1: group 8.")
    temperature: float = option(1.2, "Sampling temperature of the rollouts.", "PeBR-R1: temperature 1.2.")
    top_p: float = option(0.99, "Nucleus sampling of the rollouts (top_k is off).", "PeBR-R1: top_p 0.99.")
    beta: float = option(
        1e-2, "KL coefficient against the stage's start model (0 = no reference model).",
        "PeBR-R1: EasyR1 low_var_kl with coef 1e-2; low_var_kl is the k3 estimator TRL uses for its KL term.")
    learning_rate: float = option(1e-6, "AdamW learning rate.", "PeBR-R1: lr 1e-6.")
    weight_decay: float = option(1e-2, "AdamW weight decay.", "PeBR-R1: weight decay 1e-2.")
    max_prompt_length: int = option(
        2048, "Longest prompt (text + image tokens); longer items are dropped from the stage.",
        "PeBR-R1: max prompt 2048; dropping matches EasyR1's filter_overlong_prompts.")
    max_completion_length: int = option(2048, "Longest sampled response in tokens.", "PeBR-R1: max response 2048.")
    rollout_batch_prompts: int = option(
        512, "Prompts sampled per generation round (EasyR1 data.rollout_batch_size).",
        "science.md does not list PeBR-R1's; 512 is EasyR1's default (and CapCurriculum's).")
    global_batch_prompts: int = option(
        128, "Prompts per optimizer step (EasyR1 worker.actor.global_batch_size).",
        "EasyR1's default 128, so one round of 512 prompts gives 4 optimizer steps.")
    epochs: dict = option({"perception": 1.0, "reasoning": 2.0}, "Epochs per stage.",
                          "PeBR-R1: stage 1 one epoch, stage 2 two epochs.")
    shuffle: bool = option(True, "Shuffle each stage's items (False keeps the export's order).",
                           "The pebr-2stage export is in item-id order, which carries no meaning.")
    freeze_vision_tower_stages: list = option(
        [], "Stages in which the vision tower (and its merger) gets no updates.",
        "PeBR-R1 trains the vision tower in both stages.")
    format_prompt: str | None = option(
        None, "Instruction appended to each prompt; None = the layout the stage's reward checks, '' = none.",
        "A format reward only works if the prompt asks for the format.")


@dataclass
class CapCurriculumConfig(Shared):
    """From Seeing to Thinking: perception, then text-only reasoning, then visual reasoning; one reward."""

    num_generations: int = option(5, "Completions sampled per prompt (the GRPO group G).", "CapCurriculum: group 5.")
    temperature: float = option(1.0, "Sampling temperature of the rollouts.", "CapCurriculum: temperature 1.0.")
    top_p: float = option(1.0, "Nucleus sampling of the rollouts (top_k is off).",
                          "CapCurriculum keeps EasyR1's top_p 1.0 (plain sampling).")
    beta: float = option(1e-2, "KL coefficient against the stage's start model (0 = no reference model).",
                         "CapCurriculum: KL coef 1e-2 (EasyR1 low_var_kl = TRL's k3 estimator).")
    learning_rate: float = option(1e-6, "AdamW learning rate.", "CapCurriculum: lr 1e-6.")
    weight_decay: float = option(1e-2, "AdamW weight decay.", "EasyR1's default 1e-2 (CapCurriculum keeps it).")
    max_prompt_length: int = option(
        2048, "Longest prompt (text + image tokens); longer items are dropped from the stage.",
        "EasyR1's default max prompt 2048 with filter_overlong_prompts.")
    max_completion_length: int = option(2048, "Longest sampled response in tokens.",
                                        "CapCurriculum: max response 2048.")
    rollout_batch_prompts: int = option(512, "Prompts sampled per generation round.",
                                        "CapCurriculum: rollout batch 512.")
    global_batch_prompts: int = option(128, "Prompts per optimizer step.", "CapCurriculum: global batch 128.")
    epochs: dict = option(
        {"perception": 16.0, "textual_reasoning": 15.0, "visual_reasoning": 15.0}, "Epochs per stage.",
        "CapCurriculum: 16 / 15 / 15 epochs (90 / 375 / 465 steps on its data).")
    shuffle: bool = option(
        False, "Shuffle each stage's items (False keeps the export's order).",
        "The capcurriculum-3stage export sorts each stage easy -> hard (pass rate descending): a difficulty "
        "curriculum inside each stage, which adds to capability staging (science.md); shuffling would undo it.")
    freeze_vision_tower_stages: list = option(
        ["textual_reasoning"], "Stages in which the vision tower (and its merger) gets no updates.",
        "CapCurriculum freezes the vision tower in the text-only stage, where it gets no useful gradient.")
    format_prompt: str | None = option(
        None, "Instruction appended to each prompt; None = EasyR1's math prompt (<think>, \\boxed{}), '' = none.",
        "CapCurriculum trains with EasyR1's math format prompt.")


@dataclass
class MergedConfig(Shared):
    """The baseline: every item in one stage with the reasoning reward (staging is compared against it)."""

    reward_style: str = option(
        "pebr", "Which reasoning reward: 'pebr' (0.9 accuracy + 0.1 four-header format) or 'capcurriculum' "
        "(0.9 boxed accuracy + 0.1 <think>/\\boxed format).",
        "PeBR is the platform's default rule, so the baseline matches pebr-2stage's answer format.",
        ("pebr", "capcurriculum"))
    num_generations: int = option(8, "Completions sampled per prompt (the GRPO group G).",
                                  "Same as pebr-2stage, so only the staging differs.")
    temperature: float = option(1.2, "Sampling temperature of the rollouts.", "Same as pebr-2stage (PeBR-R1).")
    top_p: float = option(0.99, "Nucleus sampling of the rollouts (top_k is off).", "Same as pebr-2stage (PeBR-R1).")
    beta: float = option(1e-2, "KL coefficient against the start model (0 = no reference model).",
                         "Both anchors: 1e-2 (k3 estimator).")
    learning_rate: float = option(1e-6, "AdamW learning rate.", "Both anchors: 1e-6.")
    weight_decay: float = option(1e-2, "AdamW weight decay.", "Both anchors: 1e-2.")
    max_prompt_length: int = option(2048, "Longest prompt; longer items are dropped.", "Both anchors: 2048.")
    max_completion_length: int = option(2048, "Longest sampled response in tokens.", "Both anchors: 2048.")
    rollout_batch_prompts: int = option(512, "Prompts sampled per generation round.", "EasyR1 / CapCurriculum: 512.")
    global_batch_prompts: int = option(128, "Prompts per optimizer step.", "EasyR1 / CapCurriculum: 128.")
    epochs: dict = option(
        {"merged": 1.0}, "Epochs of the single stage.",
        "One pass; to compare at matched steps (as the papers do) set max_steps to the staged run's total.")
    shuffle: bool = option(True, "Shuffle the items (False keeps the export's order).",
                           "The merged export is in item-id order, which carries no meaning.")
    freeze_vision_tower_stages: list = option([], "Stages in which the vision tower gets no updates.",
                                              "The merged data has images throughout.")
    format_prompt: str | None = option(None, "Instruction appended to each prompt; None = reward_style's, '' = none.",
                                       "A format reward only works if the prompt asks for the format.")


RECIPES: dict[str, type] = {
    "pebr-2stage": PebrConfig,
    "capcurriculum-3stage": CapCurriculumConfig,
    "merged": MergedConfig,
}
RecipeConfig = PebrConfig | CapCurriculumConfig | MergedConfig


# ---------------------------------------------------------------- loading and checking


def load_config(recipe: str, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RecipeConfig:
    """The recipe's defaults, overridden by the YAML file at `path` and then by `overrides`; validated."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    values: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        source = str(path)
        values.update(read_yaml(path, recipe))
    values.update(overrides or {})
    return from_dict(recipe, values, source)


def read_yaml(path: str | Path, recipe: str | None = None) -> dict[str, Any]:
    """The key/value pairs of a config YAML, with its optional `recipe:` restriction checked and removed."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file is a mapping of field: value")
    allowed = values.pop("recipe", None)
    if allowed is not None:
        allowed = [allowed] if isinstance(allowed, str) else allowed
        unknown = [name for name in allowed if name not in RECIPES]
        if unknown:
            raise ConfigError(f"{path}: recipe {unknown[0]!r} is not one of {sorted(RECIPES)}")
        if recipe is not None and recipe not in allowed:
            raise ConfigError(f"{path} is for recipe(s) {allowed}, not {recipe}")
    return values


def yaml_recipes(path: str | Path) -> list[str]:
    """The recipes a YAML file may be used with (all, unless it has a `recipe:` key)."""
    import yaml

    values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    allowed = values.get("recipe") if isinstance(values, dict) else None
    if allowed is None:
        return list(RECIPES)
    return [allowed] if isinstance(allowed, str) else list(allowed)


def from_dict(recipe: str, values: dict[str, Any], source: str = "config") -> RecipeConfig:
    """Build and validate a recipe config from plain values (unknown keys and wrong types are errors)."""
    cls = RECIPES[recipe]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {key!r} for recipe {recipe}{hint}. "
                              f"Valid keys: {', '.join(sorted(fields))}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"{source}: {key} = {value!r} is not a {_type_name(hints[key])}")
    config = cls(**values)
    validate(config, recipe, source=source)
    return config


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (list, dict, str):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    return " or ".join(getattr(arg, "__name__", str(arg)) for arg in (typing.get_args(hint) or (hint,)))


def validate(config: RecipeConfig, recipe: str, world_size: int = 1, source: str = "config") -> None:
    """Raise ConfigError when the settings cannot run (each message names the field)."""
    stages = RECIPE_STAGES[recipe]

    def fail(message: str) -> None:
        raise ConfigError(f"{source}: {message}")

    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        if choices and getattr(config, f.name) not in choices:
            fail(f"{f.name} = {getattr(config, f.name)!r} is not one of {list(choices)}")
    if config.num_generations < 2:
        fail("num_generations must be >= 2 (GRPO compares completions within a group)")
    if config.temperature <= 0:
        fail("temperature must be > 0 (GRPO needs sampled, different completions)")
    if not 0 < config.top_p <= 1:
        fail("top_p must be in (0, 1]")
    if config.beta < 0 or config.learning_rate <= 0 or config.weight_decay < 0:
        fail("beta and weight_decay must be >= 0 and learning_rate > 0")
    for name in ("max_prompt_length", "max_completion_length", "rollout_batch_prompts", "global_batch_prompts",
                 "per_device_train_batch_size", "logging_steps", "eval_batch_size", "save_total_limit"):
        if getattr(config, name) < 1:
            fail(f"{name} must be >= 1")
    if config.save_steps < 0:
        fail("save_steps must be >= 0 (0 = checkpoint only on cancel)")
    if config.max_steps == 0 or config.max_steps < -1:
        fail("max_steps must be -1 (use epochs) or a positive number of steps")
    if sorted(config.epochs) != sorted(stages) or any(
            not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 for v in config.epochs.values()):
        fail(f"epochs must give a positive number for exactly the stages {list(stages)}, got {config.epochs}")
    unknown = [stage for stage in config.freeze_vision_tower_stages if stage not in stages]
    if unknown:
        fail(f"freeze_vision_tower_stages names {unknown}, not stages of {recipe} ({list(stages)})")
    if config.rollout_batch_prompts % config.global_batch_prompts:
        fail(f"rollout_batch_prompts ({config.rollout_batch_prompts}) must be a multiple of "
             f"global_batch_prompts ({config.global_batch_prompts})")
    completions = config.global_batch_prompts * config.num_generations
    if completions % (config.per_device_train_batch_size * world_size):
        fail(f"global_batch_prompts x num_generations ({completions} completions per step) must be a multiple of "
             f"per_device_train_batch_size x devices ({config.per_device_train_batch_size} x {world_size})")
    if config.rollout_batch_prompts % world_size:
        # Each device then holds whole groups, which the label-free rewards need (they vote within a group).
        fail(f"rollout_batch_prompts ({config.rollout_batch_prompts}) must be a multiple of the device count "
             f"({world_size})")
    if config.cpu_threads is not None and config.cpu_threads < 1:
        fail("cpu_threads must be >= 1 or null")
    if config.eval_max_new_tokens is not None and config.eval_max_new_tokens < 1:
        fail("eval_max_new_tokens must be >= 1 or null")
    if config.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            fail("use_vllm is true but vLLM is not installed (pip install vllm, on a CUDA machine)")


def batch_plan(config: RecipeConfig, world_size: int = 1) -> dict[str, int]:
    """TRL's numbers for the prompt-based batch sizes.

    >>> batch_plan(PebrConfig(per_device_train_batch_size=8), world_size=8)
    {'gradient_accumulation_steps': 16, 'steps_per_generation': 64, 'generation_batch_size': 4096}
    """
    completions_per_step = config.global_batch_prompts * config.num_generations
    accumulation = completions_per_step // (config.per_device_train_batch_size * world_size)
    # TRL counts steps_per_generation in micro-batches: rollout / global optimizer steps per round.
    steps_per_generation = accumulation * (config.rollout_batch_prompts // config.global_batch_prompts)
    return {
        "gradient_accumulation_steps": accumulation,
        "steps_per_generation": steps_per_generation,
        "generation_batch_size": config.rollout_batch_prompts * config.num_generations,
    }


def stage_reward(recipe: str, stage: str, config: RecipeConfig) -> str:
    """Which reward a stage trains with: 'pebr_perception', 'pebr_reasoning' or 'capcurriculum'."""
    if recipe == "pebr-2stage":
        return "pebr_perception" if stage == "perception" else "pebr_reasoning"
    if recipe == "capcurriculum-3stage":
        return "capcurriculum"
    return "pebr_reasoning" if config.reward_style == "pebr" else "capcurriculum"


def format_prompt_for(reward: str, config: RecipeConfig) -> tuple[str, str]:
    """(instruction, marker): the text appended to prompts and the marker that shows it is already there."""
    pebr = reward.startswith("pebr")
    default, marker = (PEBR_FORMAT_PROMPT, PEBR_FORMAT_MARKER) if pebr else (
        CAPCURRICULUM_FORMAT_PROMPT, CAPCURRICULUM_FORMAT_MARKER)
    return (default if config.format_prompt is None else config.format_prompt), marker


def to_dict(config: RecipeConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def describe(recipe: str) -> str:
    """Every field of a recipe with its default, help text and reason (what `python -m trainer config` prints)."""
    cls = RECIPES[recipe]
    lines = [f"# {recipe}: {cls.__doc__}"]
    own = set(cls.__annotations__)  # the recipe's own choices first, then the shared settings
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        choices = f" (one of {list(f.metadata['choices'])})" if f.metadata.get("choices") else ""
        lines.append(f"{f.name}: {default!r}{choices}\n    {f.metadata['help']}\n    why: {f.metadata['why']}")
    return "\n".join(lines)
