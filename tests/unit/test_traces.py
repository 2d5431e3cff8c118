"""Episodes as MLflow traces, in a real SQLite store: the span tree, its attributes and the tags users filter
by, from hand-made episodes (tests/model/test_evaluation.py checks the evaluate stage's traces)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import SpanType

from rezero.episode.agent import Trajectory
from rezero.episode.traces import flush, log_episode_traces, trace_link

GOLD = "Oxygen tank 2 failed at 55:54 ground elapsed time."


def episode(question: str, answer: str, searched: bool) -> Trajectory:
    t0 = 1_700_000_000_000_000_000
    trajectory = Trajectory(question=question, prompt_ids=[1, 2])
    trajectory.turns = ["<think>look</think><search>oxygen tank 2</search>"] if searched else []
    trajectory.turns.append(f"<think>found</think><answer>{answer}</answer>")
    trajectory.turn_tokens = [12] * len(trajectory.turns)
    trajectory.turn_times = [(t0 + 10 * i, t0 + 10 * i + 5) for i in range(len(trajectory.turns))]
    if searched:
        trajectory.queries = ["oxygen tank 2"]
        trajectory.search_times = [(t0 + 5, t0 + 6)]
        trajectory.retrieved = [
            [
                {"chunk_id": "c7", "text": GOLD, "shown": GOLD[:20], "original": True, "score": 9.5},
                {"chunk_id": "n1", "text": GOLD, "shown": "paraphrase", "original": False, "score": 8.0},
            ]
        ]
    trajectory.stop_reason = "answer"
    return trajectory


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("traces", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    return experiment, run.info.run_id


def test_an_episode_is_a_tree_of_turns_and_searches_linked_to_its_run(store):
    experiment, run_id = store
    trajectories = [episode("When did tank 2 fail?", "55:54", True), episode("Who flew?", "Lovell", False)]
    records = [{"answer": "55:54", "chunk_text": GOLD}, {"answer": "Jim Lovell", "chunk_text": "crew"}]
    scores = {"correctness": [1.0, 0.0], "retry": [0.35, 0.0]}
    tags = {"source": "evaluation", "step": 4, "variant": "rezero", "model": "checkpoint-4"}
    ids = log_episode_traces(
        trajectories, records, scores, run_id=run_id, experiment_id=experiment, tags=tags
    )
    flush()

    wrong = mlflow.search_traces(
        locations=[experiment], run_id=run_id, filter_string="tags.correct = 'false'", return_type="list"
    )
    assert [t.info.trace_id for t in wrong] == [ids[1]]
    trace = mlflow.get_trace(ids[0])
    assert {k: trace.info.tags[k] for k in (*tags, "correct")} == {
        "source": "evaluation",
        "step": "4",
        "variant": "rezero",
        "model": "checkpoint-4",
        "correct": "true",
    }
    root, turn_1, search_1, turn_2 = trace.data.spans
    assert (root.name, root.span_type, root.inputs, root.outputs) == (
        "episode",
        SpanType.AGENT,
        {"question": "When did tank 2 fail?"},
        {"answer": "55:54"},
    )
    assert root.attributes["gold_answer"] == "55:54" and root.attributes["reward.retry"] == 0.35
    assert [s.name for s in (turn_1, search_1, turn_2)] == ["turn 1", "search 1", "turn 2"]
    assert turn_1.span_type == SpanType.LLM and turn_1.attributes["tokens"] == 12
    assert search_1.span_type == SpanType.RETRIEVER and search_1.inputs == {"query": "oxygen tank 2"}
    assert [(h["chunk_id"], h["gold"], h["original"]) for h in search_1.outputs] == [
        ("c7", True, True),
        ("n1", False, False),  # a distractor is never the gold chunk
    ]
    assert search_1.outputs[0]["shown"] == GOLD[:20] and search_1.outputs[0]["score"] == 9.5
    assert (search_1.start_time_ns, search_1.end_time_ns) == (trajectories[0].search_times[0])
    assert root.start_time_ns == trajectories[0].turn_times[0][0]


def test_the_link_points_at_the_trace_in_the_ui():
    assert trace_link("http://127.0.0.1:5000/", "3", "tr-1") == (
        "http://127.0.0.1:5000/#/experiments/3/traces?selectedEvaluationId=tr-1&traceId=tr-1"
    )
    assert trace_link("sqlite:///m.db", "3", "tr-1").startswith(
        "run `mlflow ui --backend-store-uri sqlite:///m.db`"
    )
