"""What GRPO's step log says about its groups: the share whose correctness did not vary (no correctness
signal at all), and the rollouts' searching, counted from real trajectories."""

from __future__ import annotations

from rezero.episode.agent import Trajectory
from rezero.training.grpo import RolloutStats


def episode(question: str, queries: int, answer: str | None) -> Trajectory:
    turns = ["<think>x</think><search>q</search>"] * queries
    turns.append(f"<think>x</think><answer>{answer}</answer>" if answer else "<think>x</think>")
    return Trajectory(question=question, prompt_ids=[1], turns=turns, queries=["q"] * queries)


def test_groups_whose_correctness_never_varies_are_counted_apart_from_the_total_reward():
    stats = RolloutStats(correct=lambda t: t.answer == "right")
    # q1: right and wrong (a correctness signal); q2: always wrong; q3: always right.
    stats.add([episode("q1", 1, "right"), episode("q1", 2, "wrong"), episode("q2", 1, "wrong")])
    stats.add([episode("q2", 0, None), episode("q3", 1, "right"), episode("q3", 1, "right")])
    logged = stats.flush()
    assert logged["train/frac_correctness_zero_std"] == 2 / 3
    assert logged["train/correct_share"] == 3 / 6
    assert logged["train/retried_share"] == 1 / 6
    assert logged["train/searches_per_rollout"] == 6 / 6
    assert logged["train/answered_share"] == 5 / 6
    assert stats.flush() == {}  # flushed: the next log line starts empty
