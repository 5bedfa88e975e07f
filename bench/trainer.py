"""Time per GRPO step: our trainer (`python -m trainer run`) against a bare TRL GRPOTrainer script.

Usage (from the repo root; about 2-3 minutes on 2 cores):

    .venv/bin/python bench/trainer.py [--steps 20] [--rounds 2] [--json]

Both sides get the same tiny random Qwen2.5-VL, the same export (pebr-2stage, written by the test fixture),
the same rewards (PeBR perception components, then accuracy + format + majority vote, all computed with
trainer/rewards.py) and the same GRPO settings: group 4, 4 prompts (16 completions) per step, 32 new tokens,
temperature 1.2, top_p 0.99, KL 1e-2, lr 1e-6, fp32, one CPU thread. The bare script is what a user would
write by hand with TRL; ours adds the export reader, the reward wrappers, metrics.jsonl, status.json, the
cancel check, a fresh process per stage and an eval per stage.

Per-step time = the gap between consecutive logged steps (both sides log every step at the same hook,
`on_log`), so process start-up, model loading and eval are excluded and reported separately as wall time.
Rounds alternate ours / bare so load from other processes falls on both. Goal: ours <= 1.1x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The settings both sides use (ours through a YAML, bare through GRPOConfig).
GROUP, PROMPTS, NEW_TOKENS = 4, 4, 32
SETTINGS = {
    "num_generations": GROUP,
    "rollout_batch_prompts": PROMPTS,
    "global_batch_prompts": PROMPTS,
    "per_device_train_batch_size": GROUP * PROMPTS,  # one micro-batch per step on both sides
    "max_completion_length": NEW_TOKENS,
    "max_prompt_length": 512,
    "eval_max_new_tokens": NEW_TOKENS,
    "precision": "fp32",
    "gradient_checkpointing": False,
    "save_steps": 0,
    "cpu_threads": 1,
}
STAGES = ("perception", "reasoning")


# ---------------------------------------------------------------- the bare TRL script (run in its own process)


def bare(export: Path, model_dir: Path, out: Path, steps: int) -> dict:
    """Two plain GRPOTrainer runs (perception, then reasoning from the saved perception model)."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from trainer.config import PEBR_FORMAT_PROMPT
    from trainer.rewards import majority_vote_rewards, pebr_format, pebr_perception_reward, pebr_reasoning_reward

    torch.set_num_threads(1)

    def text(completion):
        return completion[0]["content"]

    def component(name):
        def reward(completions, completion_ids, key_words, **kwargs):
            return [pebr_perception_reward(text(c), key_words=k, image_text_similarity=None, n_tokens=len(ids))[name]
                    for c, ids, k in zip(completions, completion_ids, key_words)]
        reward.__name__ = name
        return reward

    def accuracy(completions, answer, **kwargs):
        return [pebr_reasoning_reward(text(c), answer=a)["accuracy"] if a else None
                for c, a in zip(completions, answer)]

    def format_(completions, **kwargs):
        return [pebr_format(text(c)) for c in completions]

    def majority_vote(completions, answer, **kwargs):
        out = [None] * len(completions)
        for start in range(0, len(completions), GROUP):
            if not answer[start]:
                votes = majority_vote_rewards([text(c) for c in completions[start:start + GROUP]])
                out[start:start + GROUP] = votes
        return out

    class Clock(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "train_runtime" not in logs:
                self.times.append((state.global_step, time.time(), logs.get("step_time"),
                                   logs.get("completions/mean_length")))

    def add_instruction(row):
        prompt = row["prompt"]
        prompt[-1]["content"][-1]["text"] += " " + PEBR_FORMAT_PROMPT
        return {"prompt": prompt}

    result, start_model = {}, str(model_dir)
    for stage in STAGES:
        started = time.time()
        dataset = load_dataset("parquet", data_files=str(export / f"{stage}.parquet"), split="train")
        dataset = dataset.map(add_instruction)
        if stage == "perception":
            funcs = [component(n) for n in ("clip", "keyword", "format", "length")] + [accuracy]
            weights = [0.4, 0.4, 0.1, 0.1, 0.0]
        else:
            funcs, weights = [accuracy, format_, majority_vote], [0.9, 0.1, 0.9]
        model = AutoModelForImageTextToText.from_pretrained(start_model, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(start_model)
        processor.tokenizer.padding_side = "left"
        config = GRPOConfig(
            output_dir=str(out / stage), num_generations=GROUP, temperature=1.2, top_p=0.99, top_k=0,
            max_completion_length=NEW_TOKENS, learning_rate=1e-6, weight_decay=1e-2, beta=1e-2, loss_type="dapo",
            epsilon=0.2, scale_rewards="group", lr_scheduler_type="constant", max_grad_norm=1.0,
            reward_weights=weights, max_steps=steps, per_device_train_batch_size=GROUP * PROMPTS,
            gradient_accumulation_steps=1, steps_per_generation=1, bf16=False, gradient_checkpointing=False,
            logging_steps=1, save_strategy="no", seed=1, report_to="none", disable_tqdm=True,
            remove_unused_columns=False)
        clock = Clock()
        trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config, train_dataset=dataset,
                              processing_class=processor, callbacks=[clock])
        trainer.train()
        trainer.save_model(str(out / stage / "model"))
        start_model = str(out / stage / "model")
        result[stage] = {"times": clock.times, "wall": time.time() - started}
    return result


# ---------------------------------------------------------------- one round of each side


def run_ours(work: Path, export: Path, model_dir: Path, config: Path, out: Path) -> dict:
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--data", str(export), "--recipe", "pebr-2stage",
         "--model", str(model_dir), "--out", str(out), "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"trainer run failed:\n{result.stderr[-3000:]}")
    wall = time.time() - started
    stages = {}
    for stage in STAGES:
        records = [json.loads(line) for line in (out / stage / "metrics.jsonl").read_text().splitlines()]
        stages[stage] = {"times": [(r["step"], r["timestamp"], r["step_time"], r["completion_length"])
                                   for r in records]}
    return {"stages": stages, "wall": wall}


def run_bare(export: Path, model_dir: Path, out: Path, steps: int) -> dict:
    started = time.time()
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--bare", str(export), str(model_dir), str(out), str(steps)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"bare TRL script failed:\n{result.stderr[-3000:]}")
    return {"stages": json.loads(result.stdout.strip().splitlines()[-1]), "wall": time.time() - started}


def gaps(times: list) -> list[float]:
    """Seconds between consecutive logged steps (the first step, with its warm-up, only starts the clock)."""
    return [b[1] - a[1] for a, b in zip(times, times[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="GRPO steps per stage")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ours/bare rounds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare", nargs=4, metavar=("EXPORT", "MODEL", "OUT", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        export, model_dir, out, steps = args.bare
        print(json.dumps(bare(Path(export), Path(model_dir), Path(out), int(steps))))
        return 0

    import yaml

    from tests.trainer.export_fixture import write_export
    from workers.models.tiny import tiny_vlm

    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    model_dir = tiny_vlm(work / "vlm")
    # Single-letter key words give the random model a dense perception reward; every second reasoning item is
    # unlabelled, so the majority vote runs too. 32 items per stage: 20 steps x 4 prompts = 2.5 epochs.
    export = write_export(work / "export", rows_per_stage=32, eval_rows=4, unlabelled_every=2,
                          key_words=["e", "a", "o", "t"])
    config = work / "bench.yaml"
    config.write_text(yaml.safe_dump({**SETTINGS, "max_steps": args.steps}))

    rounds = []
    for number in range(args.rounds):
        print(f"round {number + 1}/{args.rounds}: ours ...", file=sys.stderr, flush=True)
        ours = run_ours(work, export, model_dir, config, work / f"ours-{number}")
        print(f"round {number + 1}/{args.rounds}: bare TRL ...", file=sys.stderr, flush=True)
        bare_run = run_bare(export, model_dir, work / f"bare-{number}", args.steps)
        rounds.append({"ours": ours, "bare": bare_run})

    report = {"settings": {**SETTINGS, "steps_per_stage": args.steps, "rounds": args.rounds}, "stages": {}}
    for stage in STAGES:
        ours_gaps = [g for r in rounds for g in gaps(r["ours"]["stages"][stage]["times"])]
        bare_gaps = [g for r in rounds for g in gaps(r["bare"]["stages"][stage]["times"])]
        ours_trl = [t[2] for r in rounds for t in r["ours"]["stages"][stage]["times"][1:]]
        bare_trl = [t[2] for r in rounds for t in r["bare"]["stages"][stage]["times"][1:]]
        report["stages"][stage] = {
            "ours_s_per_step": statistics.median(ours_gaps),
            "bare_s_per_step": statistics.median(bare_gaps),
            "ratio": statistics.median(ours_gaps) / statistics.median(bare_gaps),
            "ours_mean_s": statistics.fmean(ours_gaps),
            "bare_mean_s": statistics.fmean(bare_gaps),
            "ours_trl_step_time_s": statistics.median(ours_trl),
            "bare_trl_step_time_s": statistics.median(bare_trl),
            # sampled lengths differ once the weights do (each side trains its own copy): compare like with like
            "ours_completion_tokens": statistics.fmean(
                t[3] for r in rounds for t in r["ours"]["stages"][stage]["times"]),
            "bare_completion_tokens": statistics.fmean(
                t[3] for r in rounds for t in r["bare"]["stages"][stage]["times"]),
            "steps_timed": len(ours_gaps),
        }
    all_ours = [g for r in rounds for s in STAGES for g in gaps(r["ours"]["stages"][s]["times"])]
    all_bare = [g for r in rounds for s in STAGES for g in gaps(r["bare"]["stages"][s]["times"])]
    report["overall_ratio"] = statistics.median(all_ours) / statistics.median(all_bare)
    report["wall_s"] = {"ours": [round(r["ours"]["wall"], 1) for r in rounds],
                        "bare": [round(r["bare"]["wall"], 1) for r in rounds]}

    print(f"GRPO step time, tiny Qwen2.5-VL, {GROUP * PROMPTS} completions x {NEW_TOKENS} tokens, "
          f"{args.steps} steps/stage, {args.rounds} rounds (median of step-to-step gaps)")
    print(f"{'stage':<12}{'ours s/step':>13}{'bare TRL':>11}{'ratio':>8}   TRL step_time ours / bare   "
          f"completion tokens ours / bare")
    for stage, row in report["stages"].items():
        print(f"{stage:<12}{row['ours_s_per_step']:>13.3f}{row['bare_s_per_step']:>11.3f}{row['ratio']:>8.2f}"
              f"   {row['ours_trl_step_time_s']:.3f} / {row['bare_trl_step_time_s']:.3f}"
              f"               {row['ours_completion_tokens']:.1f} / {row['bare_completion_tokens']:.1f}")
    print(f"overall ratio ours / bare: {report['overall_ratio']:.2f}x (goal <= 1.1x)")
    print(f"wall time per round incl. start-up (ours: 3 processes + eval per stage): "
          f"ours {report['wall_s']['ours']} s, bare {report['wall_s']['bare']} s")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
