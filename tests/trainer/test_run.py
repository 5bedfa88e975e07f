"""`python -m trainer run` end to end with the tiny VLM: stages chain through saved folders, every reward
component is logged, cancel + resume finishes the same stages, and bad input is refused before training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.trainer.export_fixture import write_export

ROOT = Path(__file__).resolve().parents[2]
TINY_YAML = ROOT / "trainer" / "configs" / "cpu-tiny.yaml"
STEPS = 4  # per stage: a cancel after step 1 lands before the end, and every item is seen at least once
PERCEPTION = ["clip", "keyword", "format", "length", "accuracy"]
REASONING = ["accuracy", "format", "majority_vote"]


def trainer(*args: str, timeout: int = 300, **popen) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=timeout, **popen)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    from workers.models.tiny import tiny_clip, tiny_vlm

    root = tmp_path_factory.mktemp("trainer-run")
    config = yaml.safe_load(TINY_YAML.read_text())
    config["max_steps"] = STEPS
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    # Single-letter key words: a random model's text often contains them, so the perception stage gets a dense
    # reward (non-zero advantages); every second reasoning item is unlabelled, so majority vote trains too.
    export = write_export(root / "export", rows_per_stage=4, eval_rows=2, unlabelled_every=2,
                          key_words=["e", "a", "o", "t"])
    return {"root": root, "export": export, "model": tiny_vlm(root / "vlm"), "clip": tiny_clip(root / "clip"),
            "config": root / "tiny.yaml"}


@pytest.fixture(scope="module")
def finished(workspace) -> tuple[Path, subprocess.CompletedProcess]:
    """One uncancelled pebr-2stage run, shared by the assertions below.

    Like the platform, it puts the config (and a log) in OUT before the trainer starts."""
    out = workspace["root"] / "run"
    out.mkdir()
    shutil.copy(workspace["config"], out / "config.yaml")
    (out / "trainer.log").write_text("")
    result = trainer("run", "--data", str(workspace["export"]), "--recipe", "pebr-2stage",
                     "--model", str(workspace["model"]), "--out", str(out), "--config", str(out / "config.yaml"),
                     "--clip", f"local-dir:{workspace['clip']}")
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


# ---------------------------------------------------------------- a whole run


@pytest.mark.slow
def test_two_stage_run_writes_every_file(finished):
    out, result = finished
    assert read(out / "status.json")["state"] == "done"
    summary = read(out / "summary.json")
    assert [(s["name"], s["state"], s["steps"]) for s in summary["stages"]] == [
        ("perception", "done", STEPS), ("reasoning", "done", STEPS)]
    assert summary["steps"] == 2 * STEPS
    for stage in ("perception", "reasoning"):
        assert (out / stage / "model" / "config.json").is_file()
        assert (out / stage / "model" / "processor_config.json").is_file()  # the processor travels along
        assert not (out / stage / "checkpoints").exists()  # removed once the stage is done
        evaluation = read(out / stage / "eval.json")
        assert evaluation["n_items"] == 2 and evaluation["n_labelled"] == 2
        assert evaluation["accuracy"] == 0.0 and evaluation["format_rate"] == 0.0  # a random model
        assert 1 <= evaluation["mean_completion_length"] <= 16
        assert summary["stages"][["perception", "reasoning"].index(stage)]["eval"] == evaluation
    # stdout is JSON lines only: one per logged step (plus events), the same records as metrics.jsonl
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    metrics = [line for line in printed if "event" not in line]
    assert metrics == lines(out / "perception" / "metrics.jsonl") + lines(out / "reasoning" / "metrics.jsonl")


@pytest.mark.slow
def test_every_reward_component_is_logged(finished):
    out, _ = finished
    for stage, components in (("perception", PERCEPTION), ("reasoning", REASONING)):
        records = lines(out / stage / "metrics.jsonl")
        assert [r["step"] for r in records] == list(range(1, STEPS + 1))
        for record in records:
            for key in ["reward", "kl", "grad_norm", "completion_length", "learning_rate", "time",
                        *(f"reward/{name}" for name in components)]:
                assert key in record, (stage, key)
            assert record["learning_rate"] == 1e-6 and record["completion_length"] <= 16
        for name in components:  # each component has a value in some step (accuracy and the vote alternate)
            assert any(r[f"reward/{name}"] is not None for r in records), (stage, name)
    perception = lines(out / "perception" / "metrics.jsonl")
    assert all(r["reward/length"] == 1.0 and r["reward/format"] == 0.0 for r in perception)
    assert any(r["reward/keyword"] > 0 for r in perception)


@pytest.mark.slow
def test_stage_two_starts_from_stage_one_saved_weights_and_both_move(finished, workspace):
    from transformers import AutoModelForImageTextToText

    from trainer.models import weights_digest

    out, _ = finished
    first, second = read(out / "perception" / "stage.json"), read(out / "reasoning" / "stage.json")
    saved = AutoModelForImageTextToText.from_pretrained(out / "perception" / "model")
    initial = AutoModelForImageTextToText.from_pretrained(workspace["model"])
    assert second["start_model"] == str(out / "perception" / "model")
    assert second["start_weights_sha256"] == weights_digest(saved) == first["end_weights_sha256"]
    assert first["start_weights_sha256"] == weights_digest(initial)
    # weights moved in each stage, from real gradients (AdamW's decay alone is below fp32 resolution here)
    assert first["end_weights_sha256"] != first["start_weights_sha256"]
    assert second["end_weights_sha256"] != second["start_weights_sha256"]
    for stage in ("perception", "reasoning"):
        assert any(r["grad_norm"] > 0 for r in lines(out / stage / "metrics.jsonl")), stage
    trained = AutoModelForImageTextToText.from_pretrained(out / "reasoning" / "model")
    before, after = dict(saved.named_parameters()), dict(trained.named_parameters())
    assert any(not before[name].equal(after[name]) for name in before)


# ---------------------------------------------------------------- cancel and resume


@pytest.mark.slow
def test_cancel_then_resume_finishes_the_same_stages(workspace, finished):
    out = workspace["root"] / "cancelled"
    args = ["run", "--data", str(workspace["export"]), "--recipe", "pebr-2stage", "--model", str(workspace["model"]),
            "--out", str(out), "--config", str(workspace["config"])]
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    run = subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    for line in run.stdout:  # SIGTERM once stage 1 has logged its first step
        record = json.loads(line)
        if record.get("stage") == "perception" and record.get("step") == 1 and "event" not in record:
            run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 3

    status, stage = read(out / "status.json"), read(out / "perception" / "stage.json")
    assert status["state"] == "cancelled" and status["stage"] == "perception"
    assert stage["state"] == "cancelled" and 1 <= stage["steps"] < STEPS
    assert (out / "perception" / "model" / "config.json").is_file()  # the stage saved its model ...
    assert (out / "perception" / "checkpoints" / f"checkpoint-{stage['steps']}").is_dir()  # ... and a checkpoint
    assert not (out / "reasoning").exists()  # stage 2 never started from a cancelled stage
    assert read(out / "summary.json")["state"] == "cancelled"

    resumed = trainer(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    reference = read(finished[0] / "summary.json")
    summary = read(out / "summary.json")
    assert [(s["name"], s["state"], s["steps"], s["total_steps"]) for s in summary["stages"]] == [
        (s["name"], s["state"], s["steps"], s["total_steps"]) for s in reference["stages"]]
    first = read(out / "perception" / "stage.json")
    assert first["resumed_from"] == str(out / "perception" / "checkpoints" / f"checkpoint-{stage['steps']}")
    assert [r["step"] for r in lines(out / "perception" / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert read(out / "reasoning" / "stage.json")["start_weights_sha256"] == first["end_weights_sha256"]

    # A stage that trained but whose eval never finished (what a multi-device stage leaves): only its eval runs.
    record = read(out / "reasoning" / "stage.json")
    (out / "reasoning" / "stage.json").write_text(json.dumps({**record, "state": "trained"}))
    (out / "reasoning" / "eval.json").unlink()
    untouched = (out / "perception" / "metrics.jsonl").stat().st_mtime_ns
    again = trainer(*args, "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert read(out / "reasoning" / "stage.json")["state"] == "done"
    assert read(out / "reasoning" / "eval.json")["n_items"] == 2
    assert read(out / "reasoning" / "stage.json")["end_weights_sha256"] == record["end_weights_sha256"]
    assert (out / "perception" / "metrics.jsonl").stat().st_mtime_ns == untouched
    assert [json.loads(line).get("event") for line in again.stdout.splitlines()] == ["stage_done"]


# ---------------------------------------------------------------- refusals: nothing is trained or written


def test_a_corrupt_export_is_refused_and_nothing_is_written(tmp_path):
    export = write_export(tmp_path / "export", rows_per_stage=2, eval_rows=1)
    data = bytearray((export / "perception.parquet").read_bytes())
    data[100] ^= 0xFF
    (export / "perception.parquet").write_bytes(bytes(data))
    before = sorted(p.name for p in export.rglob("*"))

    result = trainer("run", "--data", str(export), "--recipe", "pebr-2stage", "--model", str(tmp_path / "none"),
                     "--out", str(tmp_path / "out"), "--config", str(TINY_YAML))
    assert result.returncode == 2
    assert "sha256 mismatch for perception.parquet" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in export.rglob("*")) == before


@pytest.mark.parametrize(("case", "message"), [
    ("offline-hub", "model Qwen/Qwen2.5-VL-3B-Instruct is not in the local cache and the hub cannot be reached"),
    ("no-model-folder", "config.json is missing"),
    ("recipe-mismatch", "the export was made for rule 'pebr-2stage'"),
    ("bad-clip", "open_clip_config.json is missing"),
    ("out-holds-a-run", "already holds a run (status.json); pass --resume"),
    ("resume-nothing", "holds no run"),
    ("bad-config", "unknown key 'group_size'"),
])
def test_bad_input_is_refused_before_training(tmp_path, case, message):
    export = write_export(tmp_path / "export", rows_per_stage=2, eval_rows=1)
    model = tmp_path / "vlm"
    model.mkdir()
    (model / "config.json").write_text("{}")  # enough for the spec check, which runs before any loading
    out = tmp_path / "out"
    args = {"--data": str(export), "--recipe": "pebr-2stage", "--model": str(model), "--out": str(out),
            "--config": str(TINY_YAML)}
    extra: list[str] = []
    if case == "offline-hub":
        args["--model"] = "Qwen/Qwen2.5-VL-3B-Instruct"
    elif case == "no-model-folder":
        args["--model"] = str(tmp_path / "missing")
    elif case == "recipe-mismatch":
        args["--recipe"] = "merged"
    elif case == "bad-clip":
        extra = ["--clip", f"local-dir:{tmp_path}"]
    elif case == "out-holds-a-run":
        out.mkdir()
        (out / "status.json").write_text("{}")
    elif case == "resume-nothing":
        extra = ["--resume"]
    elif case == "bad-config":
        (tmp_path / "bad.yaml").write_text("group_size: 8\n")
        args["--config"] = str(tmp_path / "bad.yaml")
    result = trainer("run", *[item for pair in args.items() for item in pair], *extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (out / "run.json").exists()
    assert not (out / "status.json").exists() or case == "out-holds-a-run"


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(finished, workspace, tmp_path):
    out, _ = finished
    status = (out / "status.json").read_text()
    config = yaml.safe_load(workspace["config"].read_text())
    config["learning_rate"] = 1e-5
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(config))
    result = trainer("run", "--data", str(workspace["export"]), "--recipe", "pebr-2stage",
                     "--model", str(workspace["model"]), "--out", str(out), "--config", str(tmp_path / "other.yaml"),
                     "--clip", f"local-dir:{workspace['clip']}", "--resume")
    assert result.returncode == 2
    assert "config differ from the run" in result.stderr
    assert (out / "status.json").read_text() == status


def test_a_stage_smaller_than_one_rollout_batch_is_refused(tmp_path):
    export = write_export(tmp_path / "export", rows_per_stage=1, eval_rows=1)
    model = tmp_path / "vlm"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = trainer("run", "--data", str(export), "--recipe", "pebr-2stage", "--model", str(model),
                     "--out", str(tmp_path / "out"), "--config", str(TINY_YAML))
    assert result.returncode == 2
    assert "fewer items than rollout_batch_prompts = 2" in result.stderr


@pytest.mark.slow
def test_capcurriculum_on_easyr1_with_lora_freezes_the_vision_tower_in_the_text_stage(workspace, tmp_path):
    """EasyR1 jsonl, an empty stage skipped, a text-only stage with the vision tower frozen, LoRA merged at save."""
    from safetensors.torch import load_file

    export = write_export(tmp_path / "export", rule="capcurriculum-3stage", fmt="easyr1", rows_per_stage=4,
                          eval_rows=2, unlabelled_every=2, empty_stages=("perception",))
    config = yaml.safe_load(TINY_YAML.read_text())
    config.update(use_lora=True, lora_r=8, lora_alpha=16)
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    result = trainer("run", "--data", str(export), "--recipe", "capcurriculum-3stage", "--model",
                     str(workspace["model"]), "--out", str(out), "--config", str(tmp_path / "lora.yaml"))
    assert result.returncode == 0, result.stderr[-4000:]
    summary = read(out / "summary.json")
    assert [(s["name"], s["state"]) for s in summary["stages"]] == [
        ("perception", "skipped"), ("textual_reasoning", "done"), ("visual_reasoning", "done")]
    textual, visual = read(out / "textual_reasoning" / "stage.json"), read(out / "visual_reasoning" / "stage.json")
    assert textual["start_model"] == str(workspace["model"])  # the skipped stage hands on what it got
    assert visual["start_model"] == str(out / "textual_reasoning" / "model")
    assert textual["frozen_vision_tensors"] > 0 and visual["frozen_vision_tensors"] == 0
    assert textual["components"] == ["accuracy", "format", "majority_vote"]

    start = load_file(workspace["model"] / "model.safetensors")
    after_text = load_file(out / "textual_reasoning" / "model" / "model.safetensors")  # LoRA merged: full weights
    after_visual = load_file(out / "visual_reasoning" / "model" / "model.safetensors")
    vision = [name for name in start if name.startswith("visual.")]
    assert vision and all(start[name].equal(after_text[name]) for name in vision)  # frozen in the text stage
    assert any(not start[name].equal(after_text[name]) for name in start if name not in vision)
    assert any(not after_text[name].equal(after_visual[name]) for name in vision)  # trained in the visual stage
