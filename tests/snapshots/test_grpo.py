"""A TRL export trains: datasets loads it and TRL's GRPOTrainer takes one step on it with a tiny VLM."""
from __future__ import annotations

import pytest

from lookfirst.snapshots import services

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_grpo_trainer_takes_a_step_on_a_trl_export(pool_items, tmp_path):
    import datasets
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from workers.models.tiny import tiny_vlm

    pool, _ = pool_items
    snapshot = services.snapshot_create(user=None, pool=pool, name="train me")
    created = services.export_create(user=None, snapshot=snapshot, fmt="trl", rule="pebr-2stage", eval_fraction=0,
                                     out_dir=tmp_path / "export", enqueue=False)
    export = services.export_execute(export_id=created.pk)
    train = datasets.load_dataset("parquet", data_files=str(tmp_path / "export" / "reasoning.parquet"),
                                  split="train")
    assert len(train) == 6

    seen: dict[str, list] = {}

    def distinct_characters(completions, **kwargs):
        """Dense toy reward: a random model never matches an answer, so reward variety instead."""
        seen.update(kwargs)
        return [len(set(completion[0]["content"])) / 8.0 for completion in completions]

    model_dir = tiny_vlm(tmp_path / "tiny")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=6, num_generations=3,
                        max_completion_length=8, max_steps=1, learning_rate=1e-3, use_cpu=True, report_to="none",
                        logging_steps=1, save_strategy="no", bf16=False, seed=0)
    trainer = GRPOTrainer(model=model, reward_funcs=distinct_characters, args=config, train_dataset=train,
                          processing_class=AutoProcessor.from_pretrained(model_dir))
    trainer.train()

    logged = trainer.state.log_history[0]
    assert trainer.state.global_step == 1
    assert logged["grad_norm"] > 0 and logged["reward_std"] > 0
    assert any(not torch.equal(before[name], p) for name, p in trainer.model.named_parameters())
    # every extra column reaches the reward function as a keyword argument
    assert {"answer", "answer_type", "key_words", "description", "item_id", "bucket", "pass_rate", "stage",
            "pseudo_label"} <= set(seen)
    assert set(seen["stage"]) == {"reasoning"} and set(seen["item_id"]) <= set(train["item_id"])
    assert export.manifest["splits"]["reasoning"]["rows"] == 6
