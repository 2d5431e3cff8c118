"""`chunk` depends on what it reads: the document and the format recorded in provenance.json, not the
retrieval time beside it, so re-ingesting the same document does not re-run it."""

from __future__ import annotations

import json
import time

import pytest

from tests.pipeline.conftest import run

PROVENANCE = "data/ingest/provenance.json"


def changed_stages(project) -> set[str]:
    return set(json.loads(run(project, "dvc", "status", "chunk", "--json").stdout or "{}"))


@pytest.mark.slow
def test_a_new_retrieval_time_of_the_same_document_does_not_rerun_chunk(project, mission_report):
    run(project, "dvc", "repro", "chunk")
    before = json.loads((project / PROVENANCE).read_text())
    time.sleep(1.1)  # retrieved_at has a resolution of one second
    run(project, "dvc", "repro", "--force", "--single-item", "ingest")
    after = json.loads((project / PROVENANCE).read_text())
    assert after["retrieved_at"] != before["retrieved_at"]
    assert changed_stages(project) == set()
    assert "Stage 'chunk' didn't change, skipping" in run(project, "dvc", "repro", "chunk").stdout

    # The format it does read still re-runs it.
    (project / PROVENANCE).write_text(json.dumps({**after, "format": "text"}))
    assert "chunk" in changed_stages(project)
