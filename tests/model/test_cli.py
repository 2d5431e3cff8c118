"""The `rezero` command with the real model: `ask` prints a trajectory, `evaluate` scores a user's QA file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.model.conftest import MODEL

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_params(tmp_path):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["agent"].update(max_turns=2, max_turn_tokens=24, max_trajectory_tokens=200)
    params["train"]["model"] = MODEL
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def rezero(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rezero.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
    )


def test_ask_prints_the_trajectory_of_a_checkpoint(trained, index_dir, tiny_params):
    checkpoint = trained["root"] / "checkpoints/checkpoint-2"
    result = rezero(
        "ask",
        "When did oxygen tank 2 fail?",
        "--checkpoint",
        str(checkpoint),
        "--index",
        str(index_dir),
        "--params",
        str(tiny_params),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "--- model" in result.stdout
        and "=== answer:" in result.stdout
        and "searches, stopped:" in result.stdout
    )


def test_ask_trace_logs_the_episode_as_a_trace_and_says_where(trained, index_dir, tiny_params, tmp_path):
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = rezero(
        "ask",
        "When did oxygen tank 2 fail?",
        "--checkpoint",
        str(trained["root"] / "checkpoints/checkpoint-2"),
        "--index",
        str(index_dir),
        "--params",
        str(tiny_params),
        "--trace",
        MLFLOW_TRACKING_URI=store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("trace "))
    trace_id = line.split()[1].rstrip(":")
    assert f"traceId={trace_id}" in line and "mlflow ui --backend-store-uri" in line
    mlflow.set_tracking_uri(store)
    trace = mlflow.get_trace(trace_id)
    assert trace.info.tags["source"] == "ask" and trace.info.tags["model"].endswith("checkpoint-2")
    assert trace.data.spans[0].inputs == {"question": "When did oxygen tank 2 fail?"}


def test_evaluate_scores_a_user_qa_file(trained, index_dir, tiny_params, tmp_path):
    qa = tmp_path / "mine.jsonl"
    qa.write_text(json.dumps({"question": "Which spacecraft was Aquarius?", "answer": "lunar module"}) + "\n")
    out = tmp_path / "metrics.json"
    result = rezero(
        "evaluate",
        "--qa",
        str(qa),
        "--index",
        str(index_dir),
        "--params",
        str(tiny_params),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(out.read_text())
    assert 0 <= metrics["accuracy"] <= 1 and "reward/retry" in metrics and "retry_share" in metrics
    assert metrics["em_chunk_rate"] is None  # the file names no gold chunk: not available, not 0.0


def test_missing_checkpoint_and_bad_qa_are_clear_errors(index_dir, tiny_params, tmp_path):
    result = rezero(
        "ask",
        "q",
        "--checkpoint",
        str(tmp_path / "none"),
        "--index",
        str(index_dir),
        "--params",
        str(tiny_params),
    )
    assert result.returncode == 1 and "not a complete LoRA checkpoint" in result.stderr
    result = rezero("ask", "  ", "--index", str(index_dir), "--params", str(tiny_params))
    assert result.returncode == 1 and "the question is empty" in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no answer here"}\n')
    result = rezero("evaluate", "--qa", str(bad), "--index", str(index_dir), "--params", str(tiny_params))
    assert result.returncode == 1 and "lack a non-empty" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no questions"),
        (
            b'{"question": "When?", "answer": "55 hours"}\n{"question": "Caf\xe9?", "answer": "x"}\n',
            ":2: not UTF-8",
        ),
        (b'{"question": "   ", "answer": "x"}\n', "rows [1] lack a non-empty `question` and `answer`"),
        (b'{"question": "' + b"why " * 5000 + b'?", "answer": "x"}\n', "rows [1] are longer than"),
    ],
)
def test_empty_unreadable_or_overlong_questions_are_refused_in_one_line_before_a_model_loads(
    index_dir, tiny_params, tmp_path, content, message
):
    qa = tmp_path / "qa.jsonl"
    qa.write_bytes(content)
    result = rezero("evaluate", "--qa", str(qa), "--index", str(index_dir), "--params", str(tiny_params))
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Loading weights" not in result.stderr


def test_an_overlong_question_to_ask_is_refused(index_dir, tiny_params):
    result = rezero("ask", "why " * 5000, "--index", str(index_dir), "--params", str(tiny_params))
    assert (
        result.returncode == 1 and "the question: the questions of rows [1] are longer than" in result.stderr
    )
