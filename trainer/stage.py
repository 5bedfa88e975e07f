"""One stage of a recipe, in its own process: `python -m trainer stage --run-dir OUT --stage NAME --start-model M`.

`trainer run` starts this once per stage (a fresh process each time, so nothing leaks between stages but
the saved folder). Reading order: setup (config, data, model, rewards) -> train (TRL GRPOTrainer) -> save
(OUT/<stage>/model/ with the processor) -> eval (OUT/<stage>/eval.json).

Files written under OUT/<stage>/:
    stage.json      state (training -> trained -> done, or cancelled), start model, weight digests, steps, times
    metrics.jsonl   one line per logged step (see METRIC_NAMES), also printed to stdout as JSON lines
    checkpoints/    resumable TRL checkpoints (periodic, and on cancel); removed when the stage is done
    model/          the trained weights + processor: the next stage's start
    eval.json       held-out accuracy / format rate / length; eval_completions.jsonl has every completion

stdout carries only JSON lines (metrics, and {"event": ...} lines); everything else goes to stderr.
SIGTERM or SIGINT: the current step finishes, a checkpoint and the model are saved, state "cancelled", exit 3.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainer.config import RECIPE_STAGES, batch_plan, format_prompt_for, from_dict, stage_reward
from trainer.export import load_split, read_manifest

EXIT_OK, EXIT_CANCELLED = 0, 3  # an exception exits 1; trainer/run.py reads these
logger = logging.getLogger("trainer.stage")

# metrics.jsonl names for TRL's log keys; reward components become reward/<name> (TRL: rewards/<name>/mean).
METRIC_NAMES = {
    "reward": "reward",  # the weighted total
    "reward_std": "reward_std",
    "kl": "kl",  # k3 estimate against the stage's start model; absent (null) when beta = 0
    "grad_norm": "grad_norm",
    "completions/mean_length": "completion_length",
    "learning_rate": "learning_rate",
    "loss": "loss",  # about 0 by construction in GRPO: watch grad_norm and rewards instead
    "entropy": "entropy",
    "frac_reward_zero_std": "frac_reward_zero_std",  # groups with no advantage signal
    "completions/clipped_ratio": "clipped_ratio",  # completions cut at max_completion_length
    "step_time": "step_time",
    "epoch": "epoch",
}


def main(run_dir: str, stage: str, start_model: str, resume: bool = False, eval_only: bool = False) -> int:
    emit = _json_stdout()  # before anything can print: stdout is for JSON lines only
    cancel = _cancel_flag()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    # ------------------------------------------------------------ setup: config, rewards, model, data
    out = Path(run_dir)
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    recipe = run["recipe"]
    config = from_dict(recipe, run["config"], source=str(out / "run.json"))
    if stage not in RECIPE_STAGES[recipe]:
        raise SystemExit(f"stage {stage!r} is not a stage of {recipe}")
    stage_dir = out / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    record = StageRecord(stage_dir / "stage.json", is_main=_is_main_process())
    reward = stage_reward(recipe, stage, config)
    manifest = read_manifest(run["data"], verify_files=False)  # `trainer run` checked every sha256
    cache_dir = out / ".cache" / "datasets"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    # Under FSDP / ZeRO-3 no process holds the whole model, so weight digests would be of a shard.
    sharded = any(os.environ.get(f"ACCELERATE_USE_{kind}", "").lower() == "true" for kind in ("FSDP", "DEEPSPEED"))
    digests = config.weight_digests and not sharded

    import torch

    from trainer.models import freeze_vision_tower, load_vlm, weights_digest
    from trainer.reward_funcs import reward_functions

    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    if eval_only:  # the stage trained but its eval did not finish (resume, or a multi-device stage)
        model, processor = load_vlm(str(stage_dir / "model"))
        if torch.cuda.is_available():
            model = model.to("cuda")
        return _eval_and_finish(model, processor, config, run, manifest, stage, reward, stage_dir, record,
                                cache_dir, cancel, emit)

    clip = None
    if reward == "pebr_perception" and run.get("clip"):
        from trainer.clip import ClipScorer

        clip = ClipScorer(run["clip"])  # loaded on the first reward call
    funcs, weights = reward_functions(reward, num_generations=config.num_generations,
                                      label_free_reward=config.label_free_reward, clip=clip)
    components = [f.__name__ for f in funcs]
    # GRPOConfig before the model: with DeepSpeed ZeRO-3 it makes from_pretrained load the weights partitioned.
    args = grpo_args(config, stage, stage_dir, weights, world_size)

    model, processor = load_vlm(start_model)
    start_digest = weights_digest(model) if digests else None
    frozen = freeze_vision_tower(model) if stage in config.freeze_vision_tower_stages else 0

    train = prepare(load_split(run["data"], manifest, stage, cache_dir), reward, config, processor,
                    drop_unlabelled=config.label_free_reward == "skip" and reward != "pebr_perception")
    if len(train["dataset"]) < config.rollout_batch_prompts:
        raise SystemExit(f"stage {stage} has {len(train['dataset'])} trainable items, fewer than "
                         f"rollout_batch_prompts = {config.rollout_batch_prompts}: lower it in the config")

    checkpoint = latest_checkpoint(stage_dir / "checkpoints") if resume else None
    record.update(stage=stage, recipe=recipe, state="training", reward=reward, components=components,
                  weights=weights, start_model=start_model, start_weights_sha256=start_digest,
                  frozen_vision_tensors=frozen, resumed_from=str(checkpoint) if checkpoint else None,
                  clip=run.get("clip"), **train["counts"])
    logger.info("stage %s: %d items to train (%d overlong dropped), reward %s = %s, from %s%s", stage,
                train["counts"]["n_trained_items"], train["counts"]["n_dropped_overlong"], reward,
                " + ".join(f"{w} {name}" for w, name in zip(weights, components)), start_model,
                f", resuming {checkpoint}" if checkpoint else "")
    if record.is_main:
        if checkpoint:
            _truncate_metrics(stage_dir / "metrics.jsonl", _checkpoint_step(checkpoint))
        elif (stage_dir / "metrics.jsonl").exists():
            (stage_dir / "metrics.jsonl").unlink()  # a fresh start of this stage: old metrics are not its own

    # ------------------------------------------------------------ train: TRL's GRPOTrainer does the RL
    from transformers import PrinterCallback, ProgressCallback
    from trl import GRPOTrainer

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=train["dataset"],
        processing_class=processor,
        peft_config=lora_config(config, frozen_vision=frozen > 0),
        callbacks=[MetricsCallback(stage, components, stage_dir / "metrics.jsonl", emit, record),
                   CancelCallback(cancel)],
    )
    for noisy in (PrinterCallback, ProgressCallback):  # they print log dicts; metrics.jsonl has them
        trainer.remove_callback(noisy)
    record.update(device=str(trainer.accelerator.device), bf16=args.bf16, devices=world_size)
    if cancel.is_set():  # cancelled while loading: nothing trained, nothing to save
        record.update(state="cancelled", steps=0)
        return EXIT_CANCELLED

    started = time.time()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = record.data.get("train_seconds", 0.0) + time.time() - started

    # ------------------------------------------------------------ save: model + processor, the next stage's start
    cancelled = cancel.is_set() and trainer.state.global_step < trainer.state.max_steps
    model = save_stage_model(trainer, processor, stage_dir / "model", record.is_main)
    record.update(state="cancelled" if cancelled else "trained", steps=trainer.state.global_step,
                  total_steps=trainer.state.max_steps, train_seconds=round(train_seconds, 3),
                  end_weights_sha256=weights_digest(model) if digests else None)
    logger.info("stage %s: %s after %d/%d steps, model saved to %s", stage, "cancelled" if cancelled else "trained",
                trainer.state.global_step, trainer.state.max_steps, stage_dir / "model")
    if cancelled:
        emit({"event": "cancelled", "stage": stage, "step": trainer.state.global_step})
        return EXIT_CANCELLED
    if world_size > 1:  # the parent evaluates the saved model in one single-device process
        return EXIT_OK
    return _eval_and_finish(model, processor, config, run, manifest, stage, reward, stage_dir, record, cache_dir,
                            cancel, emit)


# ---------------------------------------------------------------- pieces of setup


def prepare(dataset: Any, reward: str, config: Any, processor: Any, drop_unlabelled: bool) -> dict[str, Any]:
    """Append the format instruction, drop what cannot train (overlong prompts, unlabelled rows on 'skip').

    Works column-wise and keeps rows with `select`, so image bytes are never rewritten.
    """
    instruction, marker = format_prompt_for(reward, config)
    answers = dataset["answer"]
    if not len(dataset):
        return {"dataset": dataset, "counts": {"n_items": 0, "n_unlabelled": 0, "n_dropped_unlabelled": 0,
                                               "n_dropped_overlong": 0, "n_trained_items": 0}}
    counts = {"n_items": len(dataset), "n_unlabelled": sum(1 for answer in answers if not answer)}
    if instruction:
        prompts = [with_instruction(prompt, instruction, marker) for prompt in dataset["prompt"]]
        feature = dataset.features["prompt"]
        dataset = dataset.remove_columns("prompt").add_column("prompt", prompts, feature=feature)
    keep = [i for i, answer in enumerate(answers) if answer or not drop_unlabelled]
    counts["n_dropped_unlabelled"] = len(dataset) - len(keep)
    # EasyR1's filter_overlong_prompts: a prompt over max_prompt_length (text + image tokens) is dropped,
    # never truncated (truncation would cut the question or split an image's tokens).
    lengths = []
    for batch in dataset.select_columns(["prompt", "images"]).iter(batch_size=64):
        lengths.extend(prompt_tokens(processor, prompt, images)
                       for prompt, images in zip(batch["prompt"], batch["images"]))
    fitting = [i for i in keep if lengths[i] <= config.max_prompt_length]
    counts["n_dropped_overlong"] = len(keep) - len(fitting)
    counts["n_trained_items"] = len(fitting)
    if len(fitting) < len(dataset):
        dataset = dataset.select(fitting)
    return {"dataset": dataset, "counts": counts}


def with_instruction(prompt: list[dict], instruction: str, marker: str) -> list[dict]:
    """The prompt with `instruction` appended to its last user text, unless `marker` is already there.

    >>> with_instruction([{"role": "user", "content": [{"type": "text", "text": "Q? End: ###"}]}], "Use ###.", "###")
    [{'role': 'user', 'content': [{'type': 'text', 'text': 'Q? End: ###'}]}]
    >>> with_instruction([{"role": "user", "content": [{"type": "text", "text": "Q?"}]}], "Box it.", "boxed")
    [{'role': 'user', 'content': [{'type': 'text', 'text': 'Q? Box it.'}]}]
    """
    if any(marker in (block.get("text") or "") for message in prompt for block in message["content"]):
        return prompt
    prompt = [{**message, "content": [dict(block) for block in message["content"]]} for message in prompt]
    user = [message for message in prompt if message["role"] == "user"][-1]
    texts = [block for block in user["content"] if block.get("type") == "text"]
    if texts:
        texts[-1]["text"] = f"{texts[-1]['text']} {instruction}"
    else:
        user["content"].append({"type": "text", "text": instruction})
    return prompt


def prompt_tokens(processor: Any, prompt: list[dict], images: list | None) -> int:
    """Tokens the model sees for a prompt: chat template + one token per merged image patch."""
    text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return len(processor(text=[text], images=images or None, return_tensors="pt")["input_ids"][0])


def grpo_args(config: Any, stage: str, stage_dir: Path, weights: list[float], world_size: int):
    """TRL's GRPOConfig for this stage: the recipe's numbers, the batch plan, our bookkeeping."""
    import torch
    from trl import GRPOConfig

    plan = batch_plan(config, world_size)
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return GRPOConfig(
        output_dir=str(stage_dir / "checkpoints"),
        # sampling: the recipe's group, temperature and top_p; top_k 0 because generate() defaults to 50
        num_generations=config.num_generations,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=0,
        max_completion_length=config.max_completion_length,
        # optimisation: the recipe's lr / wd / KL, EasyR1's loss, clipping and schedule
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        beta=config.beta,
        loss_type=config.loss_type,
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high,
        scale_rewards=config.scale_rewards,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
        num_iterations=config.num_iterations,
        reward_weights=weights,
        # how much: epochs of this stage, or max_steps for short runs
        num_train_epochs=float(config.epochs[stage]),
        max_steps=config.max_steps,
        # batch: global_batch_prompts x G completions per optimizer step, rollout/global steps per generation round
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=plan["gradient_accumulation_steps"],
        steps_per_generation=plan["steps_per_generation"],
        # numerics and memory
        bf16=bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        # bookkeeping: our callbacks write metrics; checkpoints are for resume only
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to=config.report_to or "none",
        disable_tqdm=True,
        remove_unused_columns=False,  # the reward functions read answer, key_words, images, item_id
        shuffle_dataset=config.shuffle,
    )


def lora_config(config: Any, frozen_vision: bool):
    if not config.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        # a frozen vision tower gets no adapters either
        exclude_modules=r".*\.(visual|vision_tower|vision_model)\..*" if frozen_vision else None,
        task_type="CAUSAL_LM",
    )


def latest_checkpoint(folder: Path) -> Path | None:
    checkpoints = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(checkpoints, key=_checkpoint_step) if checkpoints else None


def _checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint we resume from (they will be logged again)."""
    if path.exists():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


# ---------------------------------------------------------------- save and eval


def save_stage_model(trainer: Any, processor: Any, folder: Path, is_main: bool) -> Any:
    """Write the full trained weights + processor to `folder`; returns the in-memory model (adapters merged).

    Without LoRA, trainer.save_model writes both and gathers FSDP / ZeRO-3 shards. With LoRA the adapters are
    merged first, so a stage always hands on plain full weights, never an adapter folder.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not hasattr(model, "merge_and_unload"):
        trainer.save_model(str(folder))
        return model
    model = model.merge_and_unload()
    if is_main:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return model


def _eval_and_finish(model, processor, config, run, manifest, stage, reward, stage_dir, record, cache_dir,
                     cancel, emit) -> int:
    from trainer.evaluate import evaluate

    if not record.is_main:
        return EXIT_OK
    style = "pebr" if reward.startswith("pebr") else "capcurriculum"
    held_out = prepare(load_split(run["data"], manifest, "eval", cache_dir), reward, config, processor,
                       drop_unlabelled=False)["dataset"]
    summary, records = evaluate(
        model, processor, held_out, style=style,
        max_new_tokens=config.eval_max_new_tokens or config.max_completion_length,
        batch_size=config.eval_batch_size, max_items=config.eval_max_items, should_stop=cancel.is_set)
    if not summary["complete"]:
        record.update(state="trained")
        emit({"event": "cancelled", "stage": stage, "during": "eval"})
        return EXIT_CANCELLED
    summary["stage"] = stage
    _write_json(stage_dir / "eval.json", summary)
    with open(stage_dir / "eval_completions.jsonl", "w", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item) + "\n")
    record.update(state="done", eval_seconds=summary["seconds"])
    if not config.keep_checkpoints:
        shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)
    emit({"event": "stage_done", "stage": stage, "eval": summary})
    return EXIT_OK


# ---------------------------------------------------------------- callbacks, records, signals



class MetricsCallback(TrainerCallback):
    """Each TRL log -> one metrics.jsonl line (our names) + the same JSON line on stdout."""

    def __init__(self, stage: str, components: list[str], path: Path, emit, record: "StageRecord") -> None:
        self.stage, self.components, self.path, self.emit, self.record = stage, components, path, emit, record
        self.started = time.time()
        self.earlier = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()
        self.earlier = float(self.record.data.get("train_seconds", 0.0))  # time of a cancelled attempt
        self.record.update(total_steps=state.max_steps)
        self.emit({"event": "train_begin", "stage": self.stage, "step": state.global_step,
                   "total_steps": state.max_steps})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs or not state.is_world_process_zero:
            return
        line = metrics_line(self.stage, state.global_step, logs, self.components,
                            elapsed=self.earlier + time.time() - self.started)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        self.record.update(steps=state.global_step)
        self.emit(line)


def metrics_line(stage: str, step: int, logs: dict[str, Any], components: list[str], elapsed: float) -> dict:
    """Our metrics record for one TRL log dict (NaN -> null; unnamed TRL keys kept under their own name).

    >>> line = metrics_line("perception", 3, {"rewards/clip/mean": 0.5, "rewards/clip/std": 0.1, "reward": 0.2,
    ...                                       "kl": float("nan")}, ["clip"], elapsed=1.0)
    >>> line["reward/clip"], line["reward"], line["kl"], line["rewards/clip/std"], line["grad_norm"]
    (0.5, 0.2, None, 0.1, None)
    """
    line: dict[str, Any] = {"stage": stage, "step": step, "time": round(elapsed, 3), "timestamp": round(time.time(), 3)}
    used = set()
    for name in components:
        key = f"rewards/{name}/mean"
        line[f"reward/{name}"] = _finite(logs.get(key))
        used.add(key)
    for key, name in METRIC_NAMES.items():
        line[name] = _finite(logs.get(key))
        used.add(key)
    for key, value in logs.items():
        if key not in used:
            line[key] = _finite(value)
    return line


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class CancelCallback(TrainerCallback):
    """On cancel: finish the step, save a resumable checkpoint, stop (all devices agree on the step)."""

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def on_step_end(self, args, state, control, **kwargs):
        if _any_process(self.flag.is_set()):
            control.should_save = True
            control.should_training_stop = True
        return control


def _any_process(value: bool) -> bool:
    """True when any process saw the flag (SIGTERM reaches ranks at different moments)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    import torch

    flag = torch.tensor([1.0 if value else 0.0], device="cuda" if torch.cuda.is_available() else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class StageRecord:
    """OUT/<stage>/stage.json, rewritten atomically on every update (only by the main process)."""

    def __init__(self, path: Path, is_main: bool = True) -> None:
        self.path, self.is_main = path, is_main
        self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def update(self, **values: Any) -> None:
        self.data.update(values, updated_at=time.time())
        if self.is_main:
            _write_json(self.path, self.data)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _json_stdout():
    """A writer for JSON lines on the real stdout; fd 1 (print, tqdm, warnings) is pointed at stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    is_main = _is_main_process()

    def emit(line: dict[str, Any]) -> None:
        if is_main:
            stream.write(json.dumps(line) + "\n")
            stream.flush()

    return emit


def _cancel_flag() -> threading.Event:
    flag = threading.Event()

    def handler(signum, frame):
        if not flag.is_set():
            print(f"stage: got {signal.Signals(signum).name}, stopping after the current step", file=sys.stderr)
        flag.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag
