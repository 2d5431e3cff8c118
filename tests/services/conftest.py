"""Fixtures of the service tests: the Elasticsearch server of `bash infra/elasticsearch.sh start` (ES_URL)
with an alias per test; for the flow and UI tests, a tiny copy of the project, the local servers that
infra/services.sh starts (on free ports, inside the copy), runs of both flows, and headless Chromium.

The session's runs build on each other to keep the suite short: the pipeline flow trains ReZero on the tiny
configuration against the MLflow server; the comparison (triggered through its Prefect deployment) then
finds ReZero's stages up to date in DVC and trains only the baseline, so one MLflow experiment ends with both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from elasticsearch import Elasticsearch

from rezero.core.config import IndexParams
from tests.conftest import PROJECT_ROOT, copy_project

ES_START_HINT = "bash infra/elasticsearch.sh start` and `export ES_URL=http://127.0.0.1:9200"
ES_SCRIPT = PROJECT_ROOT / "infra" / "elasticsearch.sh"
ES_PID_FILE = PROJECT_ROOT / os.environ.get("ES_RUN_DIR", "infra/run/elasticsearch") / "es.pid"


@pytest.fixture(scope="session")
def es_url() -> str:
    url = os.environ.get("ES_URL")
    if not url:
        message = f"ES_URL is not set: start Elasticsearch with `{ES_START_HINT}`"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run the Elasticsearch tests, not skip them)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Elasticsearch:
    return Elasticsearch(es_url, request_timeout=30)


@pytest.fixture
def es_params(es_client: Elasticsearch) -> Iterator[IndexParams]:
    """Settings with an alias of this test's own; its indices are deleted afterwards."""
    alias = f"rezero-test-{uuid.uuid4().hex[:10]}"
    yield IndexParams(backend="elasticsearch", es_index=alias, es_retry_backoff_s=0.2)
    drop(es_client, alias)


def drop(client: Elasticsearch, alias: str) -> None:
    """Delete every index whose name starts with `alias` (the alias's own and the tests' neighbours)."""
    # By name: the server refuses wildcard deletes (action.destructive_requires_name).
    for name in client.indices.get(index=f"{alias}*", allow_no_indices=True, expand_wildcards="all"):
        client.indices.delete(index=name, ignore_unavailable=True)


def local_server_managed_by_script() -> bool:
    """Whether ES_URL is the server infra/elasticsearch.sh runs here (so a test may stop and start it)."""
    port = os.environ.get("ES_PORT", "9200")
    return ES_PID_FILE.is_file() and os.environ.get("ES_URL", "").rstrip("/") == f"http://127.0.0.1:{port}"


def run_es_script(command: str) -> None:
    subprocess.run(["bash", str(ES_SCRIPT), command], check=True, timeout=240, capture_output=True)


# The smallest run that still trains and evaluates the real 135M model: a warm start of one step on 4
# episodes measured greedily on 4 dev questions, 4 questions scored for GRPO, 2 GRPO steps, a
# checkpoint each, 2 rollouts of 2 turns of 16 tokens, 2 dev and 2 test questions. Each warm start, train or
# evaluate takes 1-3 minutes on 2 cores.
TINY = {
    "synthesize.dev_size": 4,
    "warmstart.episodes": 4,
    "warmstart.min_episodes": 4,
    "warmstart.dev_samples": 0,
    "warmstart.epochs": 1.0,
    "passrate.questions": 4,
    "passrate.min_questions": 1,
    "train.max_steps": 2,
    "train.save_steps": 1,
    "train.num_generations": 2,
    "agent.max_turns": 2,
    "agent.max_turn_tokens": 16,
    "agent.max_trajectory_tokens": 300,  # 200 leaves too little room after the prompt for most results
    "agent.result_chars": 100,
    "evaluate.max_questions": 2,
}
OUTPUTS = PROJECT_ROOT / "test-outputs" / "services"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(url: str, body: dict | None = None) -> Any:
    """GET (or POST `body` as JSON to) a server's REST endpoint; the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@dataclass
class Services:
    project: Path
    prefect_url: str
    mlflow_url: str
    env: dict[str, str]  # PREFECT_API_URL and MLFLOW_TRACKING_URI set

    def script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", "infra/services.sh", *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            pytest.fail(f"services.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def flow_project(tmp_path_factory: pytest.TempPathFactory, mission_report: Path) -> Path:
    """The copy the session's flows run in (tiny configuration committed)."""
    return copy_project(tmp_path_factory.mktemp("flows"), TINY)


@pytest.fixture(scope="session")
def services(flow_project: Path) -> Iterator[Services]:
    """Prefect server, MLflow server and worker from the copy's infra/services.sh, stopped at the end."""
    prefect_port, mlflow_port = free_port(), free_port()
    env = {
        **os.environ,
        "PREFECT_PORT": str(prefect_port),
        "MLFLOW_PORT": str(mlflow_port),
        "VENV": str(Path(sys.executable).parent.parent),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
    }
    stack = Services(flow_project, f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}", env)
    started = time.monotonic()
    stack.script("start")
    print(f"services started in {time.monotonic() - started:.0f} s")
    try:
        yield stack
    finally:
        stack.script("stop", check=False)
        for log in (flow_project / "infra" / "run").glob("*.log"):  # kept for a failure's post-mortem
            OUTPUTS.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, OUTPUTS / log.name)


@pytest.fixture(scope="session")
def pipeline_run(flow_project: Path, services: Services) -> dict[str, Any]:
    """The pipeline flow, in Prefect's test harness, logging to the real MLflow server: ReZero, tiny."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    started = time.monotonic()
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": services.mlflow_url}), prefect_test_harness():
        state = pipeline(
            variant="rezero",
            steps=TINY["train.max_steps"],
            overrides={"evaluate.max_questions": TINY["evaluate.max_questions"]},
            project_dir=str(flow_project),
            return_state=True,
        )
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["rezero-pipeline"]))
            )
    return {"state": state, "artifacts": artifacts, "seconds": time.monotonic() - started}


@pytest.fixture(scope="session")
def deployments(services: Services) -> list[dict[str, Any]]:
    """prefect.yaml's deployments registered on the server (`services.sh deploy`)."""
    services.script("deploy")
    return api(f"{services.prefect_url}/api/deployments/filter", {})


def run_deployment(services: Services, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Trigger a deployment as a user would (`prefect deployment run`), wait for the worker to finish it,
    and return its flow run as the server reports it, with the CLI's output and the time it took."""
    started = time.monotonic()
    prefect = str(Path(sys.executable).parent / "prefect")
    watch = ["--watch", "--watch-timeout", "1800"]
    result = subprocess.run(
        [prefect, "deployment", "run", deployment, "--params", json.dumps(parameters), *watch],
        cwd=services.project,
        env=services.env,
        capture_output=True,
        text=True,
    )
    flow = deployment.split("/")[0]
    runs = api(
        f"{services.prefect_url}/api/flow_runs/filter",
        {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    return {"cli": result, "flow_run": runs[0] if runs else None, "seconds": time.monotonic() - started}


@pytest.fixture(scope="session")
def comparison(services: Services, deployments: list, pipeline_run: dict) -> dict[str, Any]:
    """The comparison flow over 2 seeds, triggered through its deployment and run by the worker."""
    return run_deployment(services, "rezero-compare/weekly", {"name_prefix": "svc", "seeds": 2})


@pytest.fixture(scope="session")
def nightly_run(services: Services, comparison: dict) -> dict[str, Any]:
    """The pipeline's deployment, triggered with the settings the comparison left in the workspace (the
    baseline's): DVC finds every stage up to date, so this run only checks and reports."""
    return run_deployment(services, "rezero-pipeline/nightly", {"variant": "no_retry"})


def chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        message = "chromium is not installed: run `bash infra/install-browser.sh` (Debian packages)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def browse(url: str, screenshot: Path, wait_ms: int = 20000) -> str:
    """Open `url` in headless Chromium (as root, without a GPU), save a screenshot, return the rendered DOM.
    The virtual-time budget lets the single-page UIs fetch and draw their data before the capture."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    profile = screenshot.parent / f".profile-{screenshot.stem}"
    shutil.rmtree(profile, ignore_errors=True)
    flags = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--run-all-compositor-stages-before-draw",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        f"--virtual-time-budget={wait_ms}",
    ]
    try:
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
        )
        shutil.rmtree(profile, ignore_errors=True)
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return dom.stdout
