"""One GRPO step of the paper profile's code path on the CPU with the small model: every setting of
`profiles.paper` in params.yaml (LoRA r=64/alpha=64 on all projections, 1 question x 6 rollouts at
temperature 0.9, up to 20 turns of 2,048 tokens and 4,096-token trajectories, the top 5 whole chunks, bf16,
gradient checkpointing, no warm start) except the model (SmolLM2-135M for Llama-3.2-3B) and the step count."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rezero.core.config import TrackingParams
from rezero.training.checkpoints import latest_checkpoint
from tests.conftest import paper_sections
from tests.model.conftest import MODEL, environment


@pytest.mark.slow
def test_one_step_of_the_paper_profile_trains_and_saves_its_checkpoint(index_dir, train_records, tmp_path):
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import TrainingSetup, train

    paper = paper_sections()
    agent = paper["agent"]
    assert (agent.max_turns, agent.max_turn_tokens, agent.max_trajectory_tokens) == (20, 2048, 4096)
    assert (agent.top_k, agent.result_chars, paper["warmstart"].enabled) == (5, None, False)
    setup = TrainingSetup(
        train=dataclasses.replace(paper["train"], model=MODEL, max_steps=1, save_steps=1),
        agent=agent,
        rewards=paper["rewards"],
        profile="paper",
        data_fingerprint="test",
        tracking=TrackingParams(experiment="rezero-test", trace_rollouts=1),
    )
    assert setup.train.gradient_checkpointing and setup.train.dtype == "bfloat16"

    with environment(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlruns.db'}"):
        summary = train(setup, train_records[:4], open_retriever(index_dir), tmp_path / "checkpoints")

    assert summary["steps"] == 1
    checkpoint = latest_checkpoint(tmp_path / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "checkpoint-1"
    adapter = json.loads((checkpoint / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (64, 64)
    assert set(adapter["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip
    step = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"][0]
    # Six rollouts were sampled, scored and trained (a loss and a gradient), none past the trajectory cap.
    assert step["num_tokens"] > 0 and "loss" in step and step["grad_norm"] >= 0
    assert 0 < step["completions/max_length"] <= agent.max_trajectory_tokens
