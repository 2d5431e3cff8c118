"""The paper's generator: an instruct LLM behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp, ...).

Endpoint, key and model come from the environment so that no secret lands in params.yaml:
REZERO_QA_BASE_URL (required, e.g. http://127.0.0.1:8000/v1), REZERO_QA_API_KEY (default "EMPTY", what
local servers accept) and REZERO_QA_MODEL (default: synthesize.openai_model).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rezero.core.config import SynthesizeParams
from rezero.core.errors import PipelineError
from rezero.external.openai_endpoint import ChatEndpoint
from rezero.external.redaction import redact_url
from rezero.synthesis.pairs import GeneratorRun, QAPair, drop_reason
from rezero.synthesis.prompting import build_messages, parse_reply

log = logging.getLogger(__name__)

NAME = "openai"
ENV_BASE_URL, ENV_API_KEY, ENV_MODEL = "REZERO_QA_BASE_URL", "REZERO_QA_API_KEY", "REZERO_QA_MODEL"
# Transport settings, not experiment knobs: a slow 8B model on one GPU answers one chunk in seconds, and
# the client's own retries (with backoff) absorb a dropped connection before the stage gives up.
REQUEST_TIMEOUT_S = 120.0
HTTP_RETRIES = 2


@dataclass(frozen=True)
class EndpointSettings:
    base_url: str
    api_key: str
    model: str
    temperature: float
    pairs_per_chunk: int
    max_retries: int

    def public(self) -> dict[str, Any]:
        """The settings worth recording with the data set: everything but the key."""
        settings = asdict(self)
        del settings["api_key"]
        return {"generator": NAME, **settings}


def endpoint_settings(params: SynthesizeParams, env: Mapping[str, str] = os.environ) -> EndpointSettings:
    """Read the endpoint from the environment; a missing or non-http URL names the variable and the fix."""
    base_url = env.get(ENV_BASE_URL, "").strip()
    if not base_url.startswith(("http://", "https://")):
        raise PipelineError(
            f"synthesize.generator is 'openai' but {ENV_BASE_URL} is {redact_url(base_url) or 'not set'!r}. "
            "Set it to an OpenAI-compatible endpoint (e.g. "
            "`export REZERO_QA_BASE_URL=http://127.0.0.1:8000/v1` after "
            "`vllm serve meta-llama/Llama-3.1-8B-Instruct`), or set synthesize.generator to 'offline'."
        )
    return EndpointSettings(
        base_url=base_url,
        api_key=env.get(ENV_API_KEY, "").strip() or "EMPTY",
        model=env.get(ENV_MODEL, "").strip() or params.openai_model,
        temperature=params.temperature,
        pairs_per_chunk=params.pairs_per_chunk,
        max_retries=params.max_retries,
    )


def pairs_for_chunk(
    endpoint: ChatEndpoint, settings: EndpointSettings, chunk: dict[str, Any], counts: dict[str, int]
) -> list[QAPair]:
    """Ask for pairs; ask again (up to max_retries times) while no pair would pass the grounding filter.

    Returns the pairs of the first attempt with a grounded pair, else those of the last attempt, so the
    summary counts what was dropped and why.
    """
    pairs: list[QAPair] = []
    for attempt in range(1 + settings.max_retries):
        counts["requests"] += 1
        if attempt:
            counts["retry_requests"] += 1
        reply = endpoint.chat(
            build_messages(chunk["text"], settings.pairs_per_chunk), temperature=settings.temperature
        )
        pairs = parse_reply(reply)
        if not pairs:
            counts["replies_malformed"] += 1
            log.warning("chunk %s: no question/answer pair in the reply: %.200r", chunk["chunk_id"], reply)
        if any(drop_reason(p.question, p.answer, chunk["text"]) is None for p in pairs):
            return pairs
    return pairs


def generate(chunks: list[dict[str, Any]], params: SynthesizeParams) -> GeneratorRun:
    """Run the LLM generator over all chunks (in order), one request per chunk and attempt."""
    settings = endpoint_settings(params)
    endpoint = ChatEndpoint(
        role="QA generator endpoint",
        base_url=settings.base_url,
        api_key=settings.api_key,
        model=settings.model,
        unreachable_fix=f"Start the server or point {ENV_BASE_URL} at a running OpenAI-compatible endpoint.",
        status_fix=f"Check {ENV_MODEL} (the served model name) and {ENV_API_KEY}.",
        timeout_s=REQUEST_TIMEOUT_S,
        max_retries=HTTP_RETRIES,
    )
    counts = {"requests": 0, "retry_requests": 0, "replies_malformed": 0}
    pairs = []
    for number, chunk in enumerate(chunks, start=1):
        pairs += [(chunk, pair) for pair in pairs_for_chunk(endpoint, settings, chunk, counts)]
        if number % 50 == 0:
            log.info("openai generator: %d/%d chunks, %d pairs so far", number, len(chunks), len(pairs))
    if counts["replies_malformed"]:
        log.warning(
            "openai generator: %d of %d replies held no pair", counts["replies_malformed"], counts["requests"]
        )
    return GeneratorRun(pairs=pairs, settings=settings.public(), counts=counts)
