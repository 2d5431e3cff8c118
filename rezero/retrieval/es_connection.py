"""Connecting to Elasticsearch: settings from the environment only, retries with backoff, clear errors.

Connection settings never come from params.yaml (they differ per machine and may be secret) and are never
logged: messages name the host (`ConnectionSettings.host`), without credentials.

    ES_URL                    http(s)://host:port of the cluster (required)
    ES_API_KEY                an API key (base64 "id:key" form), or
    ES_USERNAME, ES_PASSWORD  basic authentication
    ES_CA_CERT                PEM file of the CA that signed the cluster's certificate (https)
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
    NotFoundError,
    SSLError,
)

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError

log = logging.getLogger(__name__)

LOCAL_URL = "http://127.0.0.1:9200"
START_HINT = f"`bash infra/elasticsearch.sh start` and `export ES_URL={LOCAL_URL}`"
# Overloaded or restarting clusters answer these; the request is safe to repeat.
TRANSIENT_STATUS = (429, 502, 503, 504)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect; secrets are kept out of repr() so they cannot reach a log line."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None

    @property
    def host(self) -> str:
        """The URL without credentials, path or query: safe to log and to show in errors."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"


def settings_from_env(environ: Mapping[str, str] | None = None) -> ConnectionSettings:
    """Read ES_URL, ES_API_KEY or ES_USERNAME/ES_PASSWORD, and ES_CA_CERT; reject incomplete settings."""
    env = os.environ if environ is None else environ
    url = env.get("ES_URL", "").strip()
    if not url:
        raise PipelineError(
            "ES_URL is not set: the Elasticsearch backend reads its connection from the environment. "
            f"For a local server run {START_HINT}; for a cluster set ES_URL and ES_API_KEY (or ES_USERNAME "
            "and ES_PASSWORD) and, for a private CA, ES_CA_CERT."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PipelineError(f"ES_URL must look like {LOCAL_URL} or https://host:9200 (scheme and host).")
    if parts.username or parts.password:
        # Keeps ES_URL free of secrets, so it can be echoed in scripts and CI logs.
        raise PipelineError("ES_URL must not hold credentials: put them in ES_USERNAME and ES_PASSWORD.")
    username, password = env.get("ES_USERNAME") or None, env.get("ES_PASSWORD") or None
    if (username is None) != (password is None):
        raise PipelineError("set both ES_USERNAME and ES_PASSWORD (or neither, e.g. to use ES_API_KEY).")
    if username and env.get("ES_API_KEY"):
        raise PipelineError("set ES_API_KEY or ES_USERNAME/ES_PASSWORD, not both.")
    ca_cert = env.get("ES_CA_CERT") or None
    if ca_cert and not Path(ca_cert).is_file():
        raise PipelineError(f"ES_CA_CERT names {ca_cert}, which is not a file; give the CA's PEM file.")
    return ConnectionSettings(url, env.get("ES_API_KEY") or None, username, password, ca_cert)


class ClientRetryLog(logging.Filter):
    """Keep the client's retries to one short warning each; their tracebacks go to the debug log.

    elastic_transport logs every retry at WARNING with the whole exception chain (three tracebacks), and its
    node pool adds a line per failure: an unreachable ES_URL buried the one line that says what to do under
    screens of them. Installed on the client's loggers by `connect`, for every entry point alike.
    """

    # The client's messages (elastic_transport 9.x) that become debug lines; their meaning is in ours.
    DEMOTED = (
        "Request failure, sleeping for",
        "Node %r has failed for",
        "Resurrected node",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        retry = message.startswith("Retrying request after failure") and record.exc_info
        if not retry and not message.startswith(self.DEMOTED):
            return True
        if retry:
            attempt, retries = record.args  # type: ignore[misc]  # "(attempt %d of %d)", from 0
            error = record.exc_info[1]  # type: ignore[index]
            log.warning(
                "Elasticsearch request failed (%s); retry %d of %d", root_cause(error), attempt + 1, retries
            )
        log.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False


def root_cause(error: BaseException | None) -> str:
    """The innermost cause of a client error, e.g. "[Errno 111] Connection refused" (at most 200 chars)."""
    while error is not None and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__
    return str(error)[:200] or type(error).__name__


def quiet_client_logs() -> None:
    """Install `ClientRetryLog` (once) and hide the per-request INFO lines unless a level was chosen."""
    for name in ("elastic_transport.transport", "elastic_transport.node_pool"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            # One INFO line per request would bury a training run's own log.
            logger.setLevel(logging.WARNING)
        if not any(isinstance(f, ClientRetryLog) for f in logger.filters):
            logger.addFilter(ClientRetryLog())


def connect(settings: ConnectionSettings, params: IndexParams) -> Elasticsearch:
    """A client that retries connection errors, timeouts and 429/502/503/504 with exponential backoff:
    the n-th retry waits es_retry_backoff_s × 2^(n-1), jittered down to half of it, so the retries of one
    request span at most es_retry_backoff_s × (2^es_max_retries - 1) seconds (3.5 s with 0.5 s and 3)."""
    base = params.es_retry_backoff_s
    quiet_client_logs()
    client = Elasticsearch(
        settings.url,
        api_key=settings.api_key,
        basic_auth=(settings.username, settings.password) if settings.username else None,
        ca_certs=settings.ca_cert,
        request_timeout=params.es_timeout_s,
        max_retries=params.es_max_retries,
        retry_on_timeout=True,
        retry_on_status=TRANSIENT_STATUS,
        # The client's equal jitter waits between half and all of min(cap, b × 2^(n-2)) before the n-th
        # retry, so b = 2 base makes the first wait base (or down to half). Both > 0 for it to wait at all.
        retry_backoff_base=2 * base,
        retry_backoff_cap=base * 2 ** max(params.es_max_retries, 1),
    )
    log.info(
        "Elasticsearch client for %s (timeout %.0f s, %d retries)",
        settings.host,
        params.es_timeout_s,
        params.es_max_retries,
    )
    return client


def retry_wait_s(params: IndexParams, retry: int) -> float:
    """The wait before the `retry`-th retry (from 1), as the client's: es_retry_backoff_s × 2^(retry-1),
    jittered down to half of it."""
    full = params.es_retry_backoff_s * 2 ** (retry - 1)
    return random.uniform(full / 2, full)


@contextmanager
def explained(settings: ConnectionSettings, what: str) -> Iterator[None]:
    """Turn the client's transport and HTTP errors into PipelineErrors that say what to do."""
    host = settings.host
    try:
        yield
    except SSLError as err:
        raise PipelineError(
            f"TLS with Elasticsearch at {host} failed while {what} ({err.message}). For a private CA set "
            "ES_CA_CERT to its PEM file."
        ) from err
    except ConnectionTimeout as err:
        raise PipelineError(
            f"Elasticsearch at {host} did not answer in time while {what}, even after retries. Check the "
            "cluster's health or raise index.es_timeout_s."
        ) from err
    except ConnectionError as err:
        raise PipelineError(
            f"cannot connect to Elasticsearch at {host} (ES_URL) while {what}, even after retries. Start a "
            f"local server with {START_HINT}, or point ES_URL at a running cluster."
        ) from err
    except AuthenticationException as err:
        raise PipelineError(
            f"Elasticsearch at {host} rejected the credentials (HTTP 401) while {what}. Check ES_API_KEY, or "
            "ES_USERNAME and ES_PASSWORD."
        ) from err
    except AuthorizationException as err:
        raise PipelineError(
            f"the Elasticsearch user lacks a privilege (HTTP 403) while {what} at {host}: {err.message}. "
            "Grant it on the index (e.g. create_index, write, read, manage on the alias pattern)."
        ) from err
    except NotFoundError as err:
        raise PipelineError(
            f"Elasticsearch at {host} has no such index while {what} ({err.message}). Build it with "
            "`dvc repro index` (index.backend: elasticsearch; `dvc repro -f index` if nothing changed)."
        ) from err
    except ApiError as err:
        raise PipelineError(
            f"Elasticsearch at {host} refused a request while {what}: HTTP {err.status_code} {err.message}"
        ) from err
