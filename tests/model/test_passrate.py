"""The `passrate` stage's score with the real small model: the log-probability of exactly the gold answer's
tokens after the expert episode, higher for the answer the results show than for a made-up one, and no score
for a question no expert episode can answer."""

from __future__ import annotations

import pytest
import torch

from rezero.core.config import AgentParams
from rezero.episode.agent import ChatTemplate, SearchEnvironment, Trajectory, take_turn
from rezero.retrieval import open_retriever
from rezero.training.passrate import answer_logprob, expert_for, score_questions

pytestmark = pytest.mark.slow

AGENT = AgentParams(top_k=3, result_chars=300, max_trajectory_tokens=768)


@pytest.fixture(scope="module")
def env(index_dir):
    return SearchEnvironment(open_retriever(index_dir), AGENT)


def test_the_score_sums_the_log_probabilities_of_the_answer_tokens(base_model, tokenizer, env, train_records):
    template = ChatTemplate(tokenizer)
    record, episode = next((r, e) for r in train_records if (e := expert_for(r, template, env, seed=0)))
    tail = tokenizer(f"{record['answer']}</answer>", add_special_tokens=False)["input_ids"]
    ids = episode.prompt_ids + episode.completion_ids[:-1]  # close_episode's end of turn is not scored
    assert ids[-len(tail) :] == tail
    with torch.no_grad():
        logprobs = torch.log_softmax(base_model(torch.tensor([ids])).logits[0].float(), dim=-1)
    by_hand = sum(logprobs[p - 1, ids[p]].item() for p in range(len(ids) - len(tail), len(ids)))
    assert answer_logprob(base_model, template, episode) == pytest.approx(by_hand, abs=1e-4)


def test_the_answer_the_results_show_scores_above_a_made_up_one(base_model, tokenizer, env, train_records):
    template = ChatTemplate(tokenizer)
    higher = 0
    records = [r for r in train_records[:12] if expert_for(r, template, env, seed=0)]
    for record in records:
        gold = expert_for(record, template, env, seed=0)
        # The same turns and results, ending on an answer no result shows.
        made_up = Trajectory(question=gold.question, prompt_ids=gold.prompt_ids)
        last = gold.turns[-1].split("<answer>")[0] + "<answer>zorbulon quixat 7741</answer>"
        for turn in [*gold.turns[:-1], last]:
            take_turn(made_up, tokenizer(turn, add_special_tokens=False)["input_ids"], template, env)
        higher += answer_logprob(base_model, template, gold) > answer_logprob(base_model, template, made_up)
    assert records and higher == len(records)


def test_a_question_no_expert_episode_can_answer_has_no_score(
    base_model, tokenizer, index_dir, train_records
):
    narrow = SearchEnvironment(open_retriever(index_dir), AgentParams(top_k=1, result_chars=10))
    rows = score_questions(base_model, tokenizer, narrow, train_records[:6], seed=0)
    assert [r["id"] for r in rows] == [r["id"] for r in train_records[:6]]
    assert any(r["answer_logprob"] is None for r in rows)
    assert all(r["answer_logprob"] is None or r["answer_logprob"] < 0 for r in rows)
