"""Episodes as MLflow traces: what the agent searched for, what came back, and how it was judged.

One trace per episode, linked to an MLflow run (the training's), with MLflow's own span types so the UI's
trace view shows it as an agent run:

    episode (AGENT)      inputs: question; outputs: final answer; attributes: gold answer, judged correct,
                         each reward, step, variant, model, stop reason
    ├── turn 1 (LLM)     outputs: the text the model wrote; attributes: its token count
    ├── search 1 (RETRIEVER)  inputs: the query; outputs: each hit's chunk id, score, original or
    │                    distractor, whether it is the gold chunk, and the text shown
    └── turn 2 (LLM) ...

Tags `step`, `variant`, `model`, `correct` and `source` (evaluation, training or ask) let the UI filter
(`tags.correct = 'false'`). The episodes were played in one batch, so each span carries the real times of
its turn's batched generation and of its search. MLflow exports traces in the background; `flush` waits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rezero.episode.agent import Trajectory
from rezero.episode.rewards import is_gold_hit

SOURCE_RUN = "mlflow.sourceRun"  # trace metadata that links a trace to its run (MLflow's key)


def log_episode_traces(
    trajectories: Sequence[Trajectory],
    records: Sequence[Mapping[str, Any]],
    scores: Mapping[str, Sequence[float]] | None,
    *,
    run_id: str | None,
    experiment_id: str,
    tags: Mapping[str, Any],
) -> list[str]:
    """Log each episode as a trace (records give the gold `answer` and `chunk_text`, scores each reward per
    episode, tags the step, variant, model and source); returns the trace ids."""
    return [
        log_episode_trace(
            t,
            records[i] if i < len(records) else {},
            {name: values[i] for name, values in (scores or {}).items()},
            run_id=run_id,
            experiment_id=experiment_id,
            tags=tags,
        )
        for i, t in enumerate(trajectories)
    ]


def log_episode_trace(
    trajectory: Trajectory,
    record: Mapping[str, Any],
    rewards: Mapping[str, float],
    *,
    run_id: str | None,
    experiment_id: str,
    tags: Mapping[str, Any],
) -> str:
    import mlflow
    from mlflow.entities import SpanType

    started = trajectory.turn_times[0][0] if trajectory.turn_times else None
    ended = trajectory.turn_times[-1][1] if trajectory.turn_times else None
    correct = rewards.get("correctness")
    episode_tags = {str(k): str(v) for k, v in tags.items()}
    if correct is not None:
        episode_tags["correct"] = str(correct > 0).lower()
    root = mlflow.start_span_no_context(
        "episode",
        span_type=SpanType.AGENT,
        inputs={"question": trajectory.question},
        attributes={
            "gold_answer": record.get("answer"),
            "stop_reason": trajectory.stop_reason,
            "searches": len(trajectory.queries),
            **{f"reward.{name}": value for name, value in rewards.items()},
            **episode_tags,
        },
        tags=episode_tags,
        metadata={SOURCE_RUN: run_id} if run_id else None,
        experiment_id=experiment_id,
        start_time_ns=started,
    )
    for i, text in enumerate(trajectory.turns):
        turn_start, turn_end = trajectory.turn_times[i] if i < len(trajectory.turn_times) else (None, None)
        turn = mlflow.start_span_no_context(
            f"turn {i + 1}", span_type=SpanType.LLM, parent_span=root, start_time_ns=turn_start
        )
        tokens = trajectory.turn_tokens[i] if i < len(trajectory.turn_tokens) else None
        turn.end(outputs=text, attributes={"tokens": tokens}, end_time_ns=turn_end)
        if i < len(trajectory.queries):
            log_search_span(root, trajectory, i, record.get("chunk_text"))
    root.end(outputs={"answer": trajectory.answer}, end_time_ns=ended)
    return root.trace_id


def log_search_span(root: Any, trajectory: Trajectory, i: int, gold_chunk: Any) -> None:
    """The span of the episode's search number `i + 1`: its query, and each hit shown (gold or not)."""
    import mlflow
    from mlflow.entities import SpanType

    search_start, search_end = trajectory.search_times[i]
    search = mlflow.start_span_no_context(
        f"search {i + 1}",
        span_type=SpanType.RETRIEVER,
        parent_span=root,
        inputs={"query": trajectory.queries[i]},
        start_time_ns=search_start,
    )
    hits = [
        {
            "chunk_id": hit["chunk_id"],
            "score": hit.get("score"),
            "original": hit["original"],
            "gold": is_gold_hit(hit, gold_chunk),
            "shown": hit["shown"],
        }
        for hit in trajectory.retrieved[i]
    ]
    search.end(outputs=hits, attributes={"gold_found": any(h["gold"] for h in hits)}, end_time_ns=search_end)


def flush() -> None:
    """Wait until MLflow has exported the traces logged so far."""
    import mlflow

    mlflow.flush_trace_async_logging()


def trace_link(tracking_uri: str, experiment_id: str, trace_id: str) -> str:
    """Where the MLflow UI shows the trace: a URL for a server, else how to serve a local store first."""
    page = f"#/experiments/{experiment_id}/traces?selectedEvaluationId={trace_id}&traceId={trace_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    return f"run `mlflow ui --backend-store-uri {tracking_uri}`, then open {page}"
