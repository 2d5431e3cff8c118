"""Credentials in URLs are never shown: every URL the project prints or stores is redacted, a server's
health check sends them as a header, and MLflow's URL is stripped of them before MLflow prints it."""

from __future__ import annotations

import base64
import http.server
import os
import threading

import pytest

from rezero.core.errors import PipelineError
from rezero.external import tracking
from rezero.external.redaction import authorized_request, redact_url, split_credentials

SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://u:{SECRET}@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        (f"postgresql://mlflow:{SECRET}@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        (f"https://h/api?token={SECRET}&page=2", "https://h/api?token=***&page=2"),
        (f"https://h/v1?api_key={SECRET}#x", "https://h/v1?api_key=***#x"),
        ("sqlite:////tmp/mlruns.db", "sqlite:////tmp/mlruns.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_user_info_and_secret_query_values_are_masked_and_nothing_else(url, shown):
    assert redact_url(url) == shown and SECRET not in redact_url(url)


def test_credentials_move_from_the_url_to_a_basic_auth_header():
    assert split_credentials(f"http://alice:{SECRET}@h:1/x") == ("http://h:1/x", "alice", SECRET)
    request = authorized_request(f"http://alice:{SECRET}@h:1/health")
    assert request.full_url == "http://h:1/health"
    assert (
        request.get_header("Authorization")
        == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    )
    assert authorized_request("http://h/health", token="t").get_header("Authorization") == "Bearer t"
    assert authorized_request("http://h/health").get_header("Authorization") is None


class BasicAuthHealth(http.server.BaseHTTPRequestHandler):
    expected = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()

    def do_GET(self):
        ok = self.path == "/health" and self.headers.get("Authorization") == self.expected
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), BasicAuthHealth)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_mlflow_credentials_in_the_uri_move_to_mlflows_own_variables(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET}@{server}")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert tracking.tracking_uri() == f"http://{server}"
    assert os.environ["MLFLOW_TRACKING_URI"] == f"http://{server}"  # what MLflow itself prints
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "alice",
        SECRET,
    )
    tracking.check_server(tracking.tracking_uri())  # the health check authenticates: no error


def test_a_server_refusing_the_credentials_is_named_without_them(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-" + SECRET)
    with pytest.raises(PipelineError) as caught:
        tracking.check_server(f"http://{server}")
    assert "HTTP 401" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(PipelineError) as caught:
        tracking.check_server(f"http://bob:{SECRET}@127.0.0.1:9")
    assert "http://***@127.0.0.1:9 is unreachable" in str(caught.value) and SECRET not in str(caught.value)
