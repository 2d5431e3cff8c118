"""What the training hands TRL's GRPOConfig: one generation batch per step, trained in micro-batches."""

from __future__ import annotations

import pytest

from rezero.core.config import AgentParams, RewardParams, TrainParams, build
from rezero.core.errors import PipelineError
from rezero.training.grpo import TrainingSetup, grpo_config


def config_for(tmp_path, **train):
    setup = TrainingSetup(TrainParams(**train), AgentParams(), RewardParams(), "test", "test")
    return grpo_config(setup, tmp_path)


def test_a_step_samples_all_its_episodes_at_once_and_trains_them_in_micro_batches(tmp_path):
    config = config_for(tmp_path, questions_per_step=2, num_generations=8, micro_batch_size=2)
    assert config.generation_batch_size == 16  # one rollout call for the whole step
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (2, 8)
    assert config.steps_per_generation == 8  # so each generation feeds exactly one optimizer step


def test_without_micro_batches_a_step_is_one_pass(tmp_path):
    config = config_for(tmp_path, questions_per_step=2, num_generations=4, micro_batch_size=None)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (8, 1)


@pytest.mark.parametrize("micro", [0, 3, 16])
def test_a_micro_batch_that_does_not_divide_the_step_is_refused_by_name(micro):
    refused = r"params.yaml: train: micro_batch_size must divide the episodes of a step .* = 8\), got "
    with pytest.raises(PipelineError, match=refused):
        build(
            TrainParams,
            {"questions_per_step": 1, "num_generations": 8, "micro_batch_size": micro},
            "params.yaml: train",
        )


@pytest.mark.parametrize(("processes", "micro"), [(3, None), (4, 4), (16, None)])
def test_episodes_that_do_not_split_over_the_launched_processes_are_refused(
    tmp_path, monkeypatch, processes, micro
):
    monkeypatch.setenv("WORLD_SIZE", str(processes))  # what `accelerate launch` gives each process
    refused = rf"8 episodes per step .* do not split evenly over {processes} processes"
    with pytest.raises(PipelineError, match=refused):
        config_for(tmp_path, questions_per_step=1, num_generations=8, micro_batch_size=micro)
