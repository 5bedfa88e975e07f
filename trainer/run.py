"""`python -m trainer run`: a whole recipe, stage after stage, each stage in a fresh process.

Reading order: setup (refuse bad input before writing anything) -> train (one `python -m trainer stage`
process per stage, each starting from the previous stage's OUT/<stage>/model/) -> save (summary.json).

This process imports no torch: it checks the export's sha256s, the config and the model spec, relays the
stage processes' JSON lines to its own stdout, and keeps OUT/status.json current for a platform to poll:

    {"state": "running" | "done" | "cancelled" | "failed", "stage", "stage_index", "stages", "step",
     "total_steps", "stages_done", "message", "pid", "started_at", "updated_at"}

SIGTERM (or Ctrl-C) is passed to the running stage, which saves a checkpoint and its model; the run then
stops with state "cancelled" and exit code 3. `--resume` skips finished stages, evaluates a stage that
trained but was not evaluated, and continues an unfinished stage from its newest checkpoint.

Exit codes: 0 done, 1 a stage failed, 2 input refused (config, export, model, output folder), 3 cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from trainer.clip import ClipError, clip_folder
from trainer.config import RECIPE_STAGES, ConfigError, load_config, to_dict, validate
from trainer.export import ExportError, read_manifest
from trainer.models import ModelError, check_model_spec

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_CANCELLED = 0, 1, 2, 3
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding trainer/, put on the stages' path


class Refused(ValueError):
    """Input that cannot start a run (bad config, export, model or output folder)."""


def main(data: str, recipe: str, model: str, out: str, config_path: str | None = None, resume: bool = False,
         clip: str | None = None, accelerate_config: str | None = None) -> int:
    try:
        run = setup(data, recipe, model, out, config_path, resume, clip, accelerate_config)
    except (Refused, ConfigError, ExportError, ModelError, ClipError) as exc:
        print(f"trainer run: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return Runner(run, resume).train()


# ---------------------------------------------------------------- setup: check everything, then write run.json


def setup(data, recipe, model, out, config_path, resume, clip, accelerate_config) -> dict[str, Any]:
    config = load_config(recipe, config_path)
    world_size, distributed = _launch(accelerate_config)
    validate(config, recipe, world_size=world_size, source=config_path or f"{recipe} defaults")
    if config.use_lora and distributed in ("FSDP", "DEEPSPEED"):
        raise Refused(f"use_lora with {distributed}: merging adapters needs the full weights in one process; "
                      f"use trainer/accelerate/ddp.yaml for LoRA")
    manifest = read_manifest(data)  # sha256 of every file: a corrupt export never trains
    if manifest["rule"] != recipe or list(manifest["stages"]) != list(RECIPE_STAGES[recipe]):
        raise Refused(f"the export was made for rule {manifest['rule']!r} with stages {manifest['stages']}; "
                      f"recipe {recipe} trains the stages {list(RECIPE_STAGES[recipe])}")
    rows = {stage: manifest["splits"][stage].get("rows") for stage in manifest["stages"]}
    if not any(rows.values()):
        raise Refused(f"every stage of the export is empty: {rows}")
    too_small = {stage: n for stage, n in rows.items() if n and n < config.rollout_batch_prompts}
    if too_small:
        raise Refused(f"stages {too_small} have fewer items than rollout_batch_prompts = "
                      f"{config.rollout_batch_prompts}; lower it in --config (or export more items)")
    check_model_spec(model)
    if clip:
        clip_folder(clip)
    elif recipe == "pebr-2stage":
        print("trainer run: warning: no --clip given, the PeBR clip reward component will be 0", file=sys.stderr)

    run = {
        "data": str(Path(data).resolve()),
        "recipe": recipe,
        "model": str(Path(model).resolve()) if Path(model).expanduser().exists() else model,
        "clip": clip,
        "accelerate_config": str(Path(accelerate_config).resolve()) if accelerate_config else None,
        "world_size": world_size,
        "snapshot": manifest.get("snapshot"),
        "stages": list(manifest["stages"]),
        "stage_rows": rows,
        "config": to_dict(config),
        "out": str(Path(out).resolve()),
    }
    out_dir = Path(out)
    existing = out_dir / "run.json"
    if resume:
        if not existing.is_file():
            raise Refused(f"--resume: {out_dir} holds no run (run.json is missing)")
        before = json.loads(existing.read_text(encoding="utf-8"))
        changed = sorted(key for key in ("data", "recipe", "model", "clip", "config", "snapshot")
                         if before.get(key) != run[key])
        if changed:
            raise Refused(f"--resume: {', '.join(changed)} differ from the run in {out_dir}; resume with the "
                          f"same arguments, or start a new run in a fresh --out")
        run["started_at"] = before.get("started_at", time.time())
    else:
        # Other files may be there (a platform puts its config and log in OUT); an earlier run may not.
        earlier = [name for name in ("run.json", "status.json", "summary.json", *manifest["stages"])
                   if (out_dir / name).exists()]
        if earlier:
            raise Refused(f"{out_dir} already holds a run ({', '.join(earlier)}); pass --resume to continue it, "
                          f"or choose a fresh --out")
        run["started_at"] = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(existing, run)
    return run


def _launch(accelerate_config: str | None) -> tuple[int, str]:
    """(number of processes, accelerate distributed_type) of an accelerate config; (1, "NO") without one."""
    if not accelerate_config:
        return 1, "NO"
    import yaml

    path = Path(accelerate_config)
    if not path.is_file():
        raise Refused(f"--accelerate-config {path} does not exist")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return int(values.get("num_processes", 1)), str(values.get("distributed_type", "NO"))


# ---------------------------------------------------------------- train: one process per stage


class Runner:
    def __init__(self, run: dict[str, Any], resume: bool) -> None:
        self.run, self.resume = run, resume
        self.out = Path(run["out"])
        self.stages: list[str] = run["stages"]
        self.child: subprocess.Popen | None = None
        self.cancelled = False
        self.last_error = ""
        self.status: dict[str, Any] = {
            "state": "running", "recipe": run["recipe"], "stages": self.stages, "stage": None, "stage_index": None,
            "step": 0, "total_steps": None, "stages_done": [], "message": None, "pid": os.getpid(),
            "started_at": run["started_at"],
        }

    def train(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._status()
        start = self.run["model"]  # stage 1 starts from --model, every later one from the last stage's save
        for index, stage in enumerate(self.stages):
            state = self._stage_state(stage)
            if state is None and self.run["stage_rows"].get(stage) == 0:
                # e.g. no text-only items for capcurriculum's textual_reasoning: the next stage starts from `start`
                (self.out / stage).mkdir(parents=True, exist_ok=True)
                _write_json(self.out / stage / "stage.json", {"stage": stage, "state": "skipped",
                                                              "reason": "the export has no items for this stage"})
                print(f"trainer run: warning: stage {stage} has no items; skipped", file=sys.stderr)
                state = "skipped"
            if state in ("done", "skipped"):
                self.status["stages_done"].append(stage)
                if state == "done":
                    start = str(self.out / stage / "model")
                continue
            self.status.update(stage=stage, stage_index=index, step=0, total_steps=None)
            self._status()
            if self.cancelled:
                return self._finish("cancelled", f"cancelled before stage {stage}")
            if state != "trained":
                code = self._run_stage(stage, start, resume=self.resume and state is not None)
                if code == EXIT_CANCELLED or self.cancelled:
                    return self._finish("cancelled", f"cancelled in stage {stage} at step {self.status['step']}")
                if code != EXIT_OK:
                    return self._finish("failed", f"stage {stage} exited with code {code}: {self.last_error}")
            if self._stage_state(stage) == "trained":  # multi-device stage, or eval interrupted earlier
                code = self._run_stage(stage, start, eval_only=True)
                if code == EXIT_CANCELLED or self.cancelled:
                    return self._finish("cancelled", f"cancelled while evaluating stage {stage}")
                if code != EXIT_OK or self._stage_state(stage) != "done":
                    return self._finish("failed", f"evaluation of stage {stage} failed: {self.last_error}")
            self.status["stages_done"].append(stage)
            start = str(self.out / stage / "model")
        return self._finish("done", None)

    def _run_stage(self, stage: str, start: str, resume: bool = False, eval_only: bool = False) -> int:
        if eval_only:
            start = str(self.out / stage / "model")
        command = ["-m", "trainer", "stage", "--run-dir", str(self.out), "--stage", stage, "--start-model", start]
        command += ["--resume"] * resume + ["--eval-only"] * eval_only
        if self.run.get("accelerate_config") and not eval_only:
            command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                       self.run["accelerate_config"], *command]
        else:
            command = [sys.executable, *command]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        (self.out / stage).mkdir(parents=True, exist_ok=True)
        self.last_error = ""
        self.child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                      env=environment)
        log = threading.Thread(target=self._tee_stderr, args=(self.child.stderr, self.out / stage / "stderr.log"),
                               daemon=True)
        log.start()
        for line in self.child.stdout:  # JSON lines: metrics and {"event": ...}
            self._relay(line)
        code = self.child.wait()
        log.join(timeout=10)
        self.child = None
        return code

    def _relay(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            print(line, file=sys.stderr)
            return
        print(line, flush=True)
        if record.get("event") == "train_begin":
            self.status.update(step=record["step"], total_steps=record["total_steps"])
            self._status()
        elif "event" not in record and "step" in record:
            self.status["step"] = record["step"]
            self._status()

    def _tee_stderr(self, stream, path: Path) -> None:
        with open(path, "a", encoding="utf-8") as log:
            for line in stream:
                sys.stderr.write(line)
                log.write(line)
                log.flush()
                if line.strip():
                    self.last_error = line.strip()

    def _on_signal(self, signum, frame) -> None:
        self.cancelled = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)  # the stage finishes its step, checkpoints, saves, exits 3

    def _stage_state(self, stage: str) -> str | None:
        path = self.out / stage / "stage.json"
        return json.loads(path.read_text(encoding="utf-8")).get("state") if path.is_file() else None

    # ------------------------------------------------------------ save: status and summary

    def _finish(self, state: str, message: str | None) -> int:
        self.status.update(state=state, message=message)
        self._status()
        _write_json(self.out / "summary.json", self._summary(state))
        if state == "done":  # arrow copies of the export, kept only while a resume may need them
            shutil.rmtree(self.out / ".cache", ignore_errors=True)
        if message:
            print(f"trainer run: {message}", file=sys.stderr)
        return {"done": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(state, EXIT_FAILED)

    def _summary(self, state: str) -> dict[str, Any]:
        stages = []
        for stage in self.stages:
            record = _read_json(self.out / stage / "stage.json") or {}
            stages.append({
                "name": stage,
                "state": record.get("state", "not started"),
                "steps": record.get("steps"),
                "total_steps": record.get("total_steps"),
                "start_model": record.get("start_model"),
                "model": str(self.out / stage / "model") if (self.out / stage / "model").is_dir() else None,
                "eval": _read_json(self.out / stage / "eval.json"),
                "train_seconds": record.get("train_seconds"),
                "eval_seconds": record.get("eval_seconds"),
                "n_trained_items": record.get("n_trained_items"),
            })
        return {
            "state": state,
            "recipe": self.run["recipe"],
            "data": self.run["data"],
            "snapshot": self.run["snapshot"],
            "model": self.run["model"],
            "clip": self.run["clip"],
            "stages": stages,
            "steps": sum(stage["steps"] or 0 for stage in stages),
            "started_at": self.run["started_at"],
            "finished_at": time.time(),
            "seconds": round(time.time() - self.run["started_at"], 3),
        }

    def _status(self) -> None:
        self.status["updated_at"] = time.time()
        _write_json(self.out / "status.json", self.status)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(temporary, path)
