"""One OpenAI-compatible chat endpoint (vLLM, llama.cpp, ...), as the LLM judge and the QA generator use it.

The client is created on first use and never pickled (TRL may send a judge to another process); the
endpoint's failures become one `PipelineError` naming its redacted URL and what to check, never a
traceback and never a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rezero.core.errors import PipelineError
from rezero.external.redaction import redact_url


@dataclass
class ChatEndpoint:
    """`role` names the endpoint in errors ("LLM judge"); `unreachable_fix` and `status_fix` say what to do
    when nothing answers or when it answers an HTTP error."""

    role: str
    base_url: str
    api_key: str
    model: str
    unreachable_fix: str
    status_fix: str
    timeout_s: float = 30.0
    max_retries: int = 2
    _client: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def __repr__(self) -> str:
        return (
            f"ChatEndpoint(role={self.role!r}, base_url={redact_url(self.base_url)!r}, model={self.model!r})"
        )

    def check(self) -> None:
        """Reach the endpoint once (its model list), so a dead or refusing one is found before any work."""
        self._send(lambda client: client.models.list())

    def chat(self, messages: list[dict[str, str]], **options: Any) -> str | None:
        """The first choice's text of one chat completion (None when the reply has no choice)."""
        response = self._send(
            lambda client: client.chat.completions.create(model=self.model, messages=messages, **options)
        )
        choices = getattr(response, "choices", None) or []
        return choices[0].message.content if choices else None

    def _send(self, request: Any) -> Any:
        import openai  # only the LLM judge and the openai generator need it

        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        try:
            return request(self._client)
        except openai.APIConnectionError as err:
            raise PipelineError(
                f"{self.role} at {redact_url(self.base_url)} is unreachable ({err}). {self.unreachable_fix}"
            ) from err
        except openai.APIStatusError as err:
            raise PipelineError(
                f"{self.role} at {redact_url(self.base_url)} answered HTTP {err.status_code} for model "
                f"{self.model!r}: {err.message}. {self.status_fix}"
            ) from err
