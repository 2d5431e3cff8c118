"""The warm start: expert episodes built by the agent's own functions from real questions and the real index
(the answer visible, loss only on the model's turns; a share retrying with a second search whose query never
holds the answer), a clear error when too few can be built, and a real SFT run that saves the adapter GRPO
continues, logs its loss to a real MLflow store and measures the adapter on dev questions."""

from __future__ import annotations

import json

import pytest

from rezero.core.config import AgentParams, RewardParams, WarmstartParams
from rezero.core.errors import PipelineError
from rezero.episode.agent import DEMONSTRATION, ChatTemplate, SearchEnvironment
from rezero.episode.answers import answer_visible
from rezero.episode.demonstrations import (
    ANSWER_THINKS,
    RETRY_THINKS,
    SEARCH_THINKS,
    build_expert_set,
    derive_query,
)
from rezero.episode.judges import normalize_answer
from rezero.retrieval import open_retriever
from rezero.training.warmstart import WarmstartSetup, run_warmstart, sft_rows
from tests.model.conftest import environment, tiny_train

pytestmark = pytest.mark.slow

# The default profile's window (300 characters, top 3) and room for two searches and an answer.
AGENT = AgentParams(top_k=3, result_chars=300, max_trajectory_tokens=768)


@pytest.fixture(scope="module")
def expert(tokenizer, index_dir, train_records):
    env = SearchEnvironment(open_retriever(index_dir), AGENT)
    template = ChatTemplate(tokenizer, AGENT.worked_example)
    return build_expert_set(train_records, template, env, episodes=24, retry_share=0.25, seed=7)


def retries(expert):
    return [(e, r) for e, r in zip(expert.episodes, expert.records, strict=True) if len(e.queries) == 2]


def singles(expert):
    return [(e, r) for e, r in zip(expert.episodes, expert.records, strict=True) if len(e.queries) == 1]


def masked_text(tokenizer, episode, keep: int) -> list[str]:
    """The completion's runs of tokens with env_mask == keep, decoded."""
    runs, current = [], []
    for token, mask in zip(episode.completion_ids, episode.env_mask, strict=True):
        if mask == keep:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs + ([tokenizer.decode(current)] if current else [])


def test_single_search_episodes_search_with_the_questions_words_then_answer_gold(tokenizer, expert):
    assert len(expert.episodes) == 24 and len(singles(expert)) == 18
    for episode, record in singles(expert):
        search, answer = masked_text(tokenizer, episode, keep=1)  # exactly the model's two turns are trained
        assert search.endswith(f"<search>{derive_query(record['question'])}</search>")
        assert any(f"<think>{think}</think>" in search for think in SEARCH_THINKS)
        assert answer.endswith(f"<answer>{record['answer']}</answer>")
        assert episode.stop_reason == "answer"


def test_retry_episodes_search_again_with_other_words_never_the_answer(tokenizer, expert):
    found = retries(expert)
    assert len(found) == 6 == expert.counts["retry_episodes"]  # round(24 x 0.25)
    for episode, record in found:
        first, again, answer = masked_text(tokenizer, episode, keep=1)
        assert first.endswith(f"<search>{derive_query(record['question'])}</search>")
        assert any(f"<think>{think}</think>" in again for think in RETRY_THINKS)
        assert answer.endswith(f"<answer>{record['answer']}</answer>")
        # The first results missed the answer; the second query's results show it.
        assert not any(answer_visible(record["answer"], hit["shown"]) for hit in episode.retrieved[0])
        assert any(answer_visible(record["answer"], hit["shown"]) for hit in episode.retrieved[1])
        query_words = set(normalize_answer(episode.queries[1]).split())
        assert not query_words & set(normalize_answer(record["answer"]).split())
        assert not query_words & set(normalize_answer(record["question"]).split())


def test_the_answer_think_names_a_result_that_shows_the_answer(tokenizer, expert):
    for episode, record in zip(expert.episodes, expert.records, strict=True):
        answer_turn = episode.turns[-1]
        number = next(n for n in range(1, 4) if any(t.format(n=n) in answer_turn for t in ANSWER_THINKS))
        assert answer_visible(record["answer"], episode.retrieved[-1][number - 1]["shown"])


def test_results_are_injected_masked_and_the_prompt_has_no_worked_example(tokenizer, expert):
    for episode in expert.episodes:
        *injected, closing = masked_text(tokenizer, episode, keep=0)
        assert len(injected) == len(episode.queries)
        assert all(text.count("<information>") == 1 and "Result 1:\n" in text for text in injected)
        assert closing == "<|im_end|>"  # close_episode's end of turn, never sampled
        prompt = tokenizer.decode(episode.prompt_ids)
        assert DEMONSTRATION[0]["content"] not in prompt and prompt.count("<|im_start|>user") == 1


def test_single_searches_fill_in_when_no_retry_fits_the_token_budget(
    tokenizer, index_dir, train_records, caplog
):
    # Two searches of three 100-character results do not fit 200 tokens: the episodes asked are still built.
    short = AgentParams(top_k=3, result_chars=100, max_trajectory_tokens=200)
    env = SearchEnvironment(open_retriever(index_dir), short)
    with caplog.at_level("WARNING", logger="rezero.episode.demonstrations"):
        expert = build_expert_set(
            train_records[:60], ChatTemplate(tokenizer), env, 4, retry_share=0.5, seed=7
        )
    assert expert.counts["episodes"] == 4 and expert.counts["retry_episodes"] == 0
    assert "0 retry demonstrations of the 2 asked" in caplog.text


def test_no_retry_share_means_single_searches_only(tokenizer, index_dir, train_records):
    env = SearchEnvironment(open_retriever(index_dir), AGENT)
    expert = build_expert_set(train_records[:40], ChatTemplate(tokenizer), env, 10, retry_share=0.0, seed=7)
    assert expert.counts["retry_episodes"] == 0 and all(len(e.queries) == 1 for e in expert.episodes)


def test_sft_rows_mask_everything_but_the_models_turns(expert):
    for row, episode in zip(sft_rows(expert.episodes), expert.episodes, strict=True):
        assert row["input_ids"] == episode.prompt_ids + episode.completion_ids
        assert len(row["assistant_masks"]) == len(row["input_ids"])
        assert sum(row["assistant_masks"]) == sum(episode.env_mask) > 0
        assert row["assistant_masks"][: len(episode.prompt_ids)] == [0] * len(episode.prompt_ids)


def test_answers_the_results_do_not_show_are_skipped(tokenizer, index_dir, train_records):
    # A 10-character window hides most answers: those questions give no demonstration, and are counted.
    narrow = AgentParams(top_k=1, result_chars=10, max_trajectory_tokens=768)
    env = SearchEnvironment(open_retriever(index_dir), narrow)
    expert = build_expert_set(
        train_records[:40], ChatTemplate(tokenizer), env, episodes=40, retry_share=0.0, seed=7
    )
    assert expert.counts["skipped"] + expert.counts["episodes"] == 40
    assert expert.counts["skipped"] > 20


def test_too_few_usable_episodes_is_a_clear_error(index_dir, train_records):
    setup = WarmstartSetup(
        warmstart=WarmstartParams(min_episodes=20),
        train=tiny_train(),
        agent=AgentParams(top_k=1, result_chars=10, max_trajectory_tokens=768),
        judge=None,
        profile="test",
        experiment="rezero-test",
    )
    with pytest.raises(
        PipelineError, match=r"only \d+ usable expert episodes \(need warmstart.min_episodes = 20\)"
    ):
        run_warmstart(setup, train_records[:30], [], open_retriever(index_dir), None)


def test_a_short_warm_start_saves_an_adapter_and_logs_its_loss(index_dir, train_records, tmp_path):
    from mlflow.tracking import MlflowClient

    from rezero.episode.judges import make_judge

    # 8 episodes, batch 4, 1 epoch: 2 optimiser steps; 2 dev questions, greedy and sampled once.
    setup = WarmstartSetup(
        warmstart=WarmstartParams(
            episodes=8, min_episodes=4, retry_share=0.25, dev_samples=1, epochs=1.0, batch_size=4
        ),
        train=tiny_train(),
        agent=AgentParams(
            top_k=3, result_chars=300, max_trajectory_tokens=768, max_turn_tokens=32, max_turns=2
        ),
        judge=make_judge(RewardParams()),
        profile="test",
        experiment="rezero-test",
    )
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    with environment(MLFLOW_TRACKING_URI=store):
        summary = run_warmstart(
            setup, train_records[:40], train_records[-2:], open_retriever(index_dir), adapter
        )
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == setup.train.lora_r
    assert summary["steps"] == 2 and summary["episodes"] == 8 and len(summary["log_history"]) == 2
    assert summary["retry_episodes"] == 2  # round(8 x 0.25)
    assert set(summary["dev"]) == {"greedy", "sampled"}
    assert set(summary["dev"]["sampled"]) == {
        "answered_after_results",
        "answered_share",
        "searches_per_question",
        "second_search_share",
        "accuracy",
        "episodes",
    }
    assert summary["dev"]["greedy"]["episodes"] == summary["dev"]["sampled"]["episodes"] == 2
    assert len(set(summary["demonstrated_ids"]) & {r["id"] for r in train_records[:40]}) == 8
    losses = MlflowClient(store).get_metric_history(summary["mlflow_run_id"], "warmstart/loss")
    assert [m.step for m in losses] == [1, 2] and all(m.value > 0 for m in losses)
