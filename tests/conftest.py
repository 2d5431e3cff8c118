"""Shared test setup: offline environment, the project's venv on PATH, and the real corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rezero.core.runtime import configure_environment

configure_environment()
# Stage commands in dvc.yaml call `python` and `dvc`: make them this interpreter's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
MISSION_REPORT = SHARED_DATA / "mission_report.md"


def paper_sections() -> dict[str, Any]:
    """params.yaml's sections under the paper profile, validated as the stages load them."""
    from rezero.core import config

    data = config.read_params_file(PROJECT_ROOT / "params.yaml")
    data["profile"] = "paper"
    names = ("agent", "train", "rewards", "warmstart", "passrate")
    return {n: config.build(config.SECTIONS[n], config.profile_section(data, n), n) for n in names}


def require_shared_file(path: Path) -> Path:
    """The real corpus: CI must have it (fail); elsewhere, skip with the reason."""
    if not path.is_file():
        message = f"{path} is missing: place the shared data beside the project (see README, Data)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mission_report() -> Path:
    return require_shared_file(MISSION_REPORT)


@pytest.fixture(scope="session")
def noise_csv() -> Path:
    return require_shared_file(SHARED_DATA / "paragraphs_noise.csv")


@pytest.fixture(scope="session")
def paper_questions() -> Path:
    return require_shared_file(SHARED_DATA / "questions.jsonl")


@pytest.fixture(scope="session")
def mission_chunks(mission_report: Path) -> list[dict]:
    from rezero.data.chunking import chunk_document

    return chunk_document(mission_report.read_text(encoding="utf-8"), "markdown", 1000, 0)


GIT_TEST_IDENTITY = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
# Stage outputs and local stores in the checkout are not copied: the copy's DVC must make its own.
NOT_COPIED = {
    "checkpoints",
    "models",
    "evaluation",
    "data",
    "metrics",
    "mlartifacts",
    "mlruns.db",
    "infra/run",
}


def copy_project(target: Path, params: dict[str, Any] | None = None) -> Path:
    """The project's files (tracked ones, and new ones outside stage outputs) in target/main with
    target/shared beside it, `params` written into params.yaml, committed: what `dvc exp run` needs."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.split()
    )
    project = target / "main"
    for name in listed:
        untracked_output = name not in tracked and any(
            name == d or name.startswith(f"{d}/") for d in NOT_COPIED
        )
        if (PROJECT_ROOT / name).is_file() and not untracked_output:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, project / name)
    (target / "shared").symlink_to(SHARED_DATA.parent)
    if params:
        from flows.support import write_params

        write_params(project / "params.yaml", params)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*GIT_TEST_IDENTITY, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT_TEST_IDENTITY, "commit", "-qm", "copy"], cwd=project, check=True)
    return project


Responder = Callable[[dict[str, Any]], tuple[int, str]]


class ChatServer(ThreadingHTTPServer):
    """A real OpenAI-compatible endpoint on 127.0.0.1. POST /v1/chat/completions answers
    `respond(request_body)` = (HTTP status, reply content), by default (200, "Yes"); GET /v1/models lists
    one model unless `models_status` is set to an error. `requests` records (path, body) in order."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.respond: Responder = lambda body: (200, "Yes")
        self.models_status = 200
        self.requests: list[tuple[str, dict[str, Any] | None]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def bodies(self) -> list[dict[str, Any]]:
        """The chat requests' bodies, in order."""
        return [body for _, body in self.requests if body is not None]


class _ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, None))
        if self.server.models_status == 200 and self.path == "/v1/models":
            self._send(
                200,
                {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}]},
            )
        else:
            self._send(
                self.server.models_status if self.server.models_status != 200 else 404,
                {"error": {"message": "nope"}},
            )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        status, content = self.server.respond(body)
        if status != 200:
            self._send(status, {"error": {"message": content}})
            return
        message = {"role": "assistant", "content": content}
        self._send(
            200,
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started `ChatServer` on a free port, shut down after the test."""
    server = ChatServer()
    # A short poll interval keeps shutdown() at teardown from waiting the default 0.5 s.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
