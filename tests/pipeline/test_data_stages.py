"""The data half of the pipeline through DVC on the real mission report, and each stage's bad inputs:
a clear one-line error, a non-zero exit, and outputs left as they were."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.pipeline.conftest import copy_project, run, set_params
from tests.unit.test_documents import make_pdf

DATA_STAGES = ["ingest", "chunk", "index", "synthesize", "visibility"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_dvc_repro_runs_the_data_stages_on_the_mission_report(project, mission_report):
    run(project, "dvc", "repro", "visibility")

    chunks = read_jsonl(project / "data/chunks.jsonl")
    assert len(chunks) == 341
    assert json.loads((project / "metrics/chunk.json").read_text())["chunks"] == 341
    provenance = json.loads((project / "data/ingest/provenance.json").read_text())
    assert provenance["sha256"].startswith("6f0ef7d2")

    from rezero.retrieval import open_retriever

    hits = open_retriever(project / "data/index").search("oxygen tank", 5)
    assert len(hits) == 5 and all(h.original for h in hits)

    train, dev, test = (read_jsonl(project / f"data/qa/{split}.jsonl") for split in ("train", "dev", "test"))
    # The paper's published pairs and split (286 / 32), synthesize.dev_size carved from its training pairs.
    assert (len(train), len(dev), len(test)) == (254, 32, 32)
    assert all(r["answer"].lower() in r["chunk_text"].lower() for r in train + dev + test)
    questions = [{r["question"] for r in split} for split in (train, dev, test)]
    assert not (questions[0] & questions[1] or questions[0] & questions[2] or questions[1] & questions[2])

    # Nothing changed: a second repro does no work, quickly.
    started = time.perf_counter()
    second = run(project, "dvc", "repro", "visibility")
    assert time.perf_counter() - started < 5
    assert "Running stage" not in second.stdout

    # Answer visibility: the gold answer is in the 3 windows shown for about three quarters of the questions.
    visibility = json.loads((project / "metrics/visibility.json").read_text())
    assert sorted(visibility) == [
        "answer_visibility_dev",
        "answer_visibility_test",
        "answer_visibility_train",
    ]
    assert all(0.6 <= share <= 0.9 for share in visibility.values()), visibility

    # What the agent is shown re-runs visibility, never the data stages before it.
    set_params(project, {"agent.top_k": 1})
    shown = run(project, "dvc", "repro", "visibility")
    assert "Running stage 'visibility'" in shown.stdout
    assert not any(f"Running stage '{s}'" in shown.stdout for s in ("ingest", "chunk", "index", "synthesize"))
    assert (
        json.loads((project / "metrics/visibility.json").read_text())["answer_visibility_test"]
        < visibility["answer_visibility_test"]
    )

    # A synthesize param re-runs synthesize only (and marks what follows it as changed).
    set_params(project, {"synthesize.seed": 7})
    third = run(project, "dvc", "repro", "index", "synthesize")
    assert "Running stage 'synthesize'" in third.stdout
    assert not any(f"Running stage '{s}'" in third.stdout for s in ("ingest", "chunk", "index"))
    assert read_jsonl(project / "data/qa/test.jsonl") != test


def run_stage(project: Path, stage: str, *args: str):
    return run(project, "python", f"stages/{stage}.py", *args, check=False)


def snapshot(project: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in (project / "data").rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ingested_template(tmp_path_factory) -> Path:
    """One copy with real ingest and chunk outputs, made once; each test gets its own copy of it."""
    project = copy_project(tmp_path_factory.mktemp("template"))
    run(project, "dvc", "repro", "chunk")
    return project


@pytest.fixture
def ingested(ingested_template, tmp_path) -> Path:
    shutil.copytree(ingested_template.parent, tmp_path / "copy", symlinks=True)
    return tmp_path / "copy" / "main"


INGEST_ARGS = ("data/ingest/document.txt", "data/ingest/provenance.json")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "content", "message"),
    [
        ("missing.md", None, "not found"),
        ("empty.md", b"", "empty"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        ("latin1.txt", "r\xe9sum\xe9 caf\xe9".encode("latin-1"), "not UTF-8"),
        ("scan.pdf", make_pdf(None), "no extractable text"),
    ],
)
def test_ingest_refuses_bad_documents_and_keeps_outputs(ingested, source, content, message):
    if content is not None:
        (ingested / source).write_bytes(content)
    set_params(ingested, {"ingest.source": source, "ingest.sha256": None})
    before = snapshot(ingested)
    result = run_stage(ingested, "ingest", *INGEST_ARGS)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.startswith("ingest: error:")
    assert "Traceback" not in result.stderr
    assert snapshot(ingested) == before


@pytest.mark.slow
def test_ingest_refuses_a_sha256_mismatch(ingested):
    set_params(ingested, {"ingest.source": "../shared/data/mission_report.md", "ingest.sha256": "0" * 64})
    before = snapshot(ingested)
    result = run_stage(ingested, "ingest", *INGEST_ARGS)
    assert result.returncode == 1 and "sha256 mismatch" in result.stderr
    assert snapshot(ingested) == before


@pytest.mark.slow
def test_ingest_without_network_or_local_copy_says_how_to_point_at_a_document(ingested):
    set_params(
        ingested,
        {"ingest.source": "http://127.0.0.1:9/report.md", "ingest.local_copies": [], "ingest.timeout_s": 2},
    )
    result = run_stage(ingested, "ingest", *INGEST_ARGS)
    assert result.returncode == 1
    assert "could not download" in result.stderr and "REZERO_SOURCE" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chunk.chunk_size": 0}, "chunk_size must be a positive"),
        ({"chunk.chunk_size": -3}, "chunk_size must be a positive"),
        ({"chunk.expected_count": 340}, "expected 340 chunks, got 341"),
        ({"chunk.chunk_sise": 10}, "unknown key(s) chunk_sise"),
    ],
)
def test_chunk_refuses_bad_params_and_keeps_outputs(ingested, overrides, message):
    set_params(ingested, overrides)
    before = snapshot(ingested)
    result = run_stage(ingested, "chunk", *INGEST_ARGS, "data/chunks.jsonl", "metrics/chunk.json")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert snapshot(ingested) == before


@pytest.mark.slow
def test_chunk_refuses_a_document_of_only_tables(ingested):
    (ingested / "data/ingest/document.txt").write_text("<table><tr><td>1</td><td>2</td></tr></table>\n")
    before = snapshot(ingested)
    result = run_stage(ingested, "chunk", *INGEST_ARGS, "data/chunks.jsonl", "metrics/chunk.json")
    assert result.returncode == 1 and "only tables" in result.stderr
    assert snapshot(ingested) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "content", ["chunk: [unclosed\n", "- just\n- a list\n", "chunk:\n  chunk_size: ten\n"]
)
def test_malformed_params_file_is_a_clear_error(ingested, content):
    (ingested / "params.yaml").write_text(content)
    before = snapshot(ingested)
    result = run_stage(ingested, "chunk", *INGEST_ARGS, "data/chunks.jsonl", "metrics/chunk.json")
    assert result.returncode == 1 and "params.yaml" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(ingested) == before


@pytest.mark.slow
def test_index_synthesize_and_visibility_refuse_missing_inputs(project):
    for stage, args in [
        ("index", ("nope.jsonl", "data/index", "metrics/index.json")),
        ("synthesize", ("nope.jsonl", "a.jsonl", "b.jsonl", "c.jsonl", "m.json")),
        ("visibility", ("data/index", "nope.jsonl", "a.jsonl", "b.jsonl", "m.json")),
    ]:
        result = run_stage(project, stage, *args)
        assert result.returncode == 1 and "nope.jsonl: file not found" in result.stderr


def test_every_stage_has_help(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    for stage in [*DATA_STAGES, "warmstart", "passrate", "train", "evaluate"]:
        result = subprocess.run(
            [sys.executable, f"stages/{stage}.py", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0 and "Params:" in result.stdout, stage
