"""The `rezero` command: ask the trained searcher a question, or evaluate any checkpoint on any QA file.

rezero ask "When did oxygen tank 2 fail?" --checkpoint models/best_adapter
rezero evaluate --qa my_questions.jsonl --checkpoint checkpoints/checkpoint-10
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rezero.core.config import RunConfig, load_config
from rezero.core.errors import PipelineError
from rezero.core.runtime import configure_environment, setup_logging

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)

CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        help="LoRA checkpoint folder (a checkpoints/checkpoint-<step> or models/best_adapter); "
        "omit for the base model."
    ),
]
IndexOption = Annotated[Path, typer.Option(help="Index folder written by the `index` stage.")]
ParamsOption = Annotated[Path, typer.Option(help="Parameters file (agent, train.model, rewards).")]


def _checked(records: list[dict], source: str, config: RunConfig, fields: tuple[str, ...]) -> None:
    """Refuse bad questions (rezero/episode/agent.py `check_questions`) before any model loads."""
    from rezero.episode.agent import ChatTemplate, check_questions
    from rezero.external.models import load_tokenizer

    template = ChatTemplate(load_tokenizer(config.train.model), config.agent.worked_example)
    check_questions(records, source, template, config.agent.max_trajectory_tokens, fields)


def _load(checkpoint: Path | None, index: Path, config: RunConfig):
    from rezero.episode.agent import SearchEnvironment
    from rezero.external.models import load_model, load_tokenizer
    from rezero.retrieval import open_retriever

    train = config.train
    model = load_model(train.model, train.dtype, adapter=checkpoint).eval()
    return model, load_tokenizer(train.model), SearchEnvironment(open_retriever(index), config.agent)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to research.")],
    checkpoint: CheckpointOption = None,
    index: IndexOption = Path("data/index"),
    params: ParamsOption = Path("params.yaml"),
    sample: Annotated[bool, typer.Option(help="Sample (temperature 0.7) instead of greedy.")] = False,
    trace: Annotated[
        bool,
        typer.Option(
            help="Also log the episode as an MLflow trace in tracking.experiment (MLFLOW_TRACKING_URI, else "
            "mlruns.db) and print its id and where to see it."
        ),
    ] = False,
) -> None:
    """Run the search agent on one question; print each search, what came back, and the answer."""
    from rezero.episode.agent import run_episodes
    from rezero.external import tracking

    if not question.strip():
        raise PipelineError(
            'the question is empty; ask something, e.g. rezero ask "What failed on Apollo 13?"'
        )
    config = load_config(params)
    _checked([{"question": question}], "the question", config, ("question",))
    experiment = config.tracking.experiment
    if trace:
        tracking.connect(experiment)  # an unreachable server fails now, before the model loads
    model, tokenizer, env = _load(checkpoint, index, config)
    (trajectory,) = run_episodes(model, tokenizer, env, [question], greedy=not sample, temperature=0.7)
    for message in trajectory.messages():
        who = "model" if message["role"] == "assistant" else "search results"
        typer.secho(f"--- {who}", bold=True)
        typer.echo(message["content"])
    typer.secho(
        f"=== answer: {trajectory.answer!r}  ({len(trajectory.queries)} searches, "
        f"stopped: {trajectory.stop_reason})",
        bold=True,
    )
    if trace:
        from rezero.episode import traces

        experiment_id = tracking.experiment_id(experiment)
        tags = {"source": "ask", "model": str(checkpoint or "base")}
        trace_id = traces.log_episode_trace(
            trajectory, {}, {}, run_id=None, experiment_id=experiment_id, tags=tags
        )
        traces.flush()
        typer.echo(f"trace {trace_id}: {traces.trace_link(tracking.tracking_uri(), experiment_id, trace_id)}")


@app.command()
def evaluate(
    qa: Annotated[Path, typer.Option(help="QA JSONL with `question`, `answer` (and optional `chunk_text`).")],
    checkpoint: CheckpointOption = None,
    index: IndexOption = Path("data/index"),
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option(help="Also write the metrics JSON here.")] = None,
) -> None:
    """Accuracy, searches per question, retry share, em_chunk rate and each reward's mean on a QA file."""
    from rezero.core.io import read_jsonl, write_json
    from rezero.episode.rewards import reward_funcs_for
    from rezero.evaluation.scoring import policy_metrics, run_policy

    records = read_jsonl(qa)
    config = load_config(params)
    _checked(records, str(qa), config, ("question", "answer"))
    reward_funcs = reward_funcs_for(config.rewards)
    model, tokenizer, env = _load(checkpoint, index, config)
    settings = config.evaluate
    metrics = policy_metrics(
        run_policy(model, tokenizer, env, records, reward_funcs, settings), reward_funcs[0]
    )
    metrics.setdefault("em_chunk_rate", None)  # null: not available, the QA file names no gold chunks
    typer.echo(json.dumps(metrics, indent=2))
    if out:
        write_json(out, metrics)


def main() -> None:
    configure_environment()
    setup_logging("WARNING")
    try:
        app()
    except PipelineError as err:
        typer.secho(f"rezero: error: {err}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
