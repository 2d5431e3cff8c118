"""params.yaml → typed settings: every section, nested ones included, is checked when it is loaded."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from rezero.core import config
from rezero.core.errors import PipelineError
from tests.conftest import PROJECT_ROOT, paper_sections


def test_params_yaml_spells_out_every_default_of_the_code():
    """params.yaml lists every knob (DVC tracks its values) and the dataclasses default to the same values,
    so settings built in code (`TrainParams()`) are the pipeline's and the two cannot drift apart."""
    data = config.read_params_file(PROJECT_ROOT / "params.yaml")
    for name, cls in config.SECTIONS.items():
        assert set(data[name]) == {f.name for f in dataclasses.fields(cls)}, name
        written = config.build(cls, data[name], where=name)
        assert dataclasses.asdict(written) == dataclasses.asdict(cls()), name


def load(tmp_path, section: str, overrides: dict) -> object:
    data = config.read_params_file(PROJECT_ROOT / "params.yaml")
    data[section] = config.deep_merge(data[section], overrides)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return getattr(config.load_config(path), section)


@pytest.mark.parametrize(
    ("section", "overrides", "message"),
    [
        (
            "rewards",
            {"weights": {"retyr": 1.0}},
            r"rewards\.weights: unknown key\(s\) retyr; known keys: corr",
        ),
        ("rewards", {"weights": {"retry": -1}}, "weight of reward retry must be a finite number >= 0"),
        ("rewards", {"weights": {"retry": "one"}}, r"rewards\.weights\.retry: expected float, got 'one'"),
        ("rewards", {"retry": {"bonus": 1}}, r"rewards\.retry: unknown key\(s\) bonus"),
        ("rewards", {"retry": {"cap": 0}}, "retry cap must be a whole number of searches >= 1"),
        ("rewards", {"retry": {"violation_factor": 2.0}}, "violation_factor must be at most 1"),
        ("rewards", {"judge": "gpt"}, r"rewards\.judge: expected one of 'normalized', 'llm', got 'gpt'"),
        ("train", {"dtype": "fp8"}, r"train\.dtype: expected one of 'float32', 'bfloat16', 'float16'"),
        ("train", {"loss_type": "ppo"}, r"train\.loss_type: expected one of 'grpo', 'dapo'"),
        ("train", {"scale_rewards": "std"}, r"train\.scale_rewards: expected one of 'group'"),
        ("index", {"backend": "solr"}, r"index\.backend: expected one of 'embedded', 'elasticsearch'"),
        ("index", {"mode": "sparse"}, r"index\.mode: expected one of 'bm25', 'dense', 'hybrid'"),
        ("synthesize", {"generator": "gpt"}, r"synthesize\.generator: expected one of 'published'"),
        ("synthesize", {"dev_size": 0}, r"dev_size must be >= 1 \(checkpoints are chosen on dev\), got 0"),
        ("warmstart", {"retry_share": 1.5}, "retry_share must be between 0 and 1, got 1.5"),
        ("warmstart", {"dev_samples": -1}, "dev_samples must be >= 0"),
        ("evaluate", {"max_questions": 0}, r"max_questions must be >= 1 or null \(all\), got 0"),
        ("passrate", {"min_logprob": 0.0}, r"need min_logprob < max_logprob <= 0"),
        ("passrate", {"max_logprob": 0.5}, r"need min_logprob < max_logprob <= 0"),
        ("passrate", {"questions": 0}, "questions must be >= 1 or null"),
        ("passrate", {"min_questions": 0}, "min_questions must be >= 1"),
        (
            "train",
            {"multi_objective_aggregation": "mean"},
            r"train\.multi_objective_aggregation: expected one of 'sum_then_normalize', 'normalize_then_sum'",
        ),
    ],
)
def test_bad_values_are_named_when_the_section_loads(tmp_path, section, overrides, message):
    with pytest.raises(PipelineError, match=message):
        load(tmp_path, section, overrides)


def test_nested_sections_load_as_dataclasses(tmp_path):
    rewards = load(tmp_path, "rewards", {"weights": {"retry": 0}, "retry": {"cap": 3}})
    assert rewards.weights == config.RewardWeights(retry=0.0)
    assert rewards.retry == config.RetrySchedule(cap=3)
    assert rewards.variant == "no_retry"
    assert load(tmp_path, "rewards", {}).variant == "rezero"


def test_defaults_are_not_shared_between_instances():
    first, second = config.RewardParams(), config.RewardParams()
    first.weights.retry = 0.0
    assert second.weights.retry == 1.0


def test_the_paper_profile_builds_the_papers_grpo_lora_and_agent_settings(tmp_path):
    """The paper's run (arXiv 2504.11001: its training settings), as handed to TRL and
    PEFT, without downloading Llama."""
    from rezero.external.models import lora_config
    from rezero.training.grpo import TrainingSetup, grpo_config

    paper = paper_sections()
    setup = TrainingSetup(paper["train"], paper["agent"], paper["rewards"], "paper", "fingerprint")
    grpo = grpo_config(setup, tmp_path)
    assert grpo.learning_rate == 5e-6 and grpo.num_generations == 6 and grpo.temperature == 0.9
    assert grpo.beta == 0.04 and grpo.max_steps == 1000 and grpo.save_steps == 50
    assert (grpo.adam_beta1, grpo.adam_beta2, grpo.weight_decay, grpo.max_grad_norm) == (0.9, 0.99, 0.1, 0.1)
    assert grpo.lr_scheduler_type == "cosine" and grpo.warmup_steps == 0.1 and grpo.loss_type == "grpo"
    assert grpo.generation_batch_size == 6  # one question x 6 rollouts a step, in one pass
    assert (grpo.per_device_train_batch_size, grpo.gradient_accumulation_steps) == (6, 1)
    assert grpo.bf16 and grpo.gradient_checkpointing and not grpo.use_vllm
    assert grpo.reward_weights == [4.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    assert grpo.multi_objective_aggregation == "sum_then_normalize"  # the weighted sum, as the paper
    lora = lora_config(paper["train"])
    assert (lora.r, lora.lora_alpha) == (64, 64)
    assert set(lora.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    agent = paper["agent"]
    assert (agent.max_turns, agent.top_k, agent.max_turn_tokens, agent.max_trajectory_tokens) == (
        20,
        5,
        2048,
        4096,
    )
    assert agent.result_chars is None and not agent.worked_example  # whole chunks, the paper's prompt
    assert paper["train"].model == "meta-llama/Llama-3.2-3B-Instruct" and not paper["warmstart"].enabled
    assert not paper["passrate"].enabled  # the paper drew its questions from the whole training split


def test_use_vllm_is_refused_because_nothing_would_use_the_engine(tmp_path):
    with pytest.raises(
        PipelineError, match=r"train: use_vllm: true is not supported: the multi-turn rollout"
    ):
        load(tmp_path, "train", {"use_vllm": True})
