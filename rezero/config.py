"""params.yaml → typed settings: one dataclass per section, validated with clear errors.

Every knob of the pipeline lives in params.yaml; these classes give each one a type, a default and a
meaning (the field's `help`). Unknown keys, wrong types and bad values are rejected with the key's full
name, what is wrong and how to fix it. Nothing here has side effects at import.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rezero.errors import PipelineError

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


def knob(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by `--help` and in errors)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class IngestParams:
    source: str = knob(
        "https://raw.githubusercontent.com/menloresearch/ReZero/main/data/mission_report.md",
        "Document to ingest: a local path or an http(s) URL (.md, .txt or .pdf). "
        "The environment variable REZERO_SOURCE overrides it.",
    )
    sha256: str | None = knob(
        "6f0ef7d293d2bd4e1f25b4891218324fc8f10dafb903ff994d7dca7430e1e1c6",
        "Expected sha256 of the source bytes; required for URLs, checked for paths when set. "
        "REZERO_SOURCE_SHA256 overrides it.",
    )
    local_copies: list[str] = knob(
        ["../shared/data/mission_report.md"],
        "Local files tried before downloading a URL source; one is used only if its sha256 matches.",
    )
    timeout_s: float = knob(30.0, "Download timeout in seconds.")

    def __post_init__(self) -> None:
        if self.source.startswith(("http://", "https://")) and not self.sha256:
            raise ValueError("a URL source must be pinned: set ingest.sha256 to the file's sha256")


@dataclass
class ChunkParams:
    chunk_size: int = knob(1000, "Maximum characters per chunk (paper: 1000).")
    chunk_overlap: int = knob(0, "Characters shared by neighbouring chunks (paper: 0).")
    expected_count: int | None = knob(
        341, "Fail the stage unless exactly this many chunks come out (paper: 341); null to skip."
    )

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive number of characters, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be >= 0 and smaller than chunk_size ({self.chunk_size}), "
                f"got {self.chunk_overlap}"
            )


@dataclass
class IndexParams:
    backend: str = knob("embedded", "Search engine: 'embedded' (tantivy, in data/index) or 'elasticsearch'.")
    distractors: str | None = knob(
        None,
        "Optional CSV of paraphrased distractors (the paper's noise, e.g. paragraphs_noise.csv with "
        "columns original_paragraph, paraphrased_text), indexed as non-original documents.",
    )
    distractors_sha256: str | None = knob(None, "Expected sha256 of the distractors file, checked when set.")

    def __post_init__(self) -> None:
        if self.backend not in ("embedded", "elasticsearch"):
            raise ValueError(f"backend must be 'embedded' or 'elasticsearch', got {self.backend!r}")


@dataclass
class SynthesizeParams:
    generator: str = knob("offline", "QA generator: 'offline' (rule-based, no model) or 'openai'.")
    pairs_per_chunk: int = knob(2, "Question/answer pairs requested per chunk (paper: 2).")
    temperature: float = knob(0.3, "Sampling temperature of the 'openai' generator (paper: 0.3).")
    openai_model: str = knob(
        "meta-llama/Llama-3.1-8B-Instruct",
        "Model name sent to the OpenAI-compatible endpoint; REZERO_QA_MODEL overrides it.",
    )
    max_retries: int = knob(1, "Extra requests per chunk when no pair survives the filter (paper: 1).")
    test_fraction: float = knob(0.1, "Share of pairs held out as the test split (paper: 0.1).")
    seed: int = knob(42, "Seed of the train/test split and of the offline generator (paper: 42).")

    def __post_init__(self) -> None:
        if self.generator not in ("offline", "openai"):
            raise ValueError(f"generator must be 'offline' or 'openai', got {self.generator!r}")
        if self.pairs_per_chunk < 1:
            raise ValueError(f"pairs_per_chunk must be >= 1, got {self.pairs_per_chunk}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")


@dataclass
class AgentParams:
    max_turns: int = knob(3, "Model turns per episode (paper: 20).")
    top_k: int = knob(3, "Search results shown per query (paper: 5).")
    max_turn_tokens: int = knob(96, "New tokens per model turn (paper: 2048).")
    max_trajectory_tokens: int = knob(
        640, "Completion tokens per episode, model and injected together (paper: 4096)."
    )
    result_chars: int | None = knob(
        None, "Show only the first N characters of each result (null: the whole chunk, as in the paper)."
    )
    noise_share: float = knob(
        0.0, "Share of result slots filled with distractors when the index has them (0: plain ranking)."
    )

    def __post_init__(self) -> None:
        for name in ("max_turns", "top_k", "max_turn_tokens", "max_trajectory_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.noise_share <= 1:
            raise ValueError(f"noise_share must be between 0 and 1, got {self.noise_share}")


SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "chunk": ChunkParams,
    "index": IndexParams,
    "synthesize": SynthesizeParams,
    "agent": AgentParams,
}


def read_params_file(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The raw mapping in params.yaml, or a PipelineError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: parameters file not found. Run from the project root.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({err}). Fix the syntax and re-run.") from err
    if not isinstance(data, dict):
        raise PipelineError(
            f"{path}: expected a mapping of sections (ingest, chunk, ...), got {type(data).__name__}."
        )
    return data


def load_section(name: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """Load and validate one section of params.yaml (e.g. `load_section("chunk")`)."""
    if name not in SECTIONS:
        raise KeyError(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")
    data = read_params_file(path)
    return build(SECTIONS[name], profile_section(data, name, path), where=f"{path}: {name}")


def profile_section(data: dict[str, Any], name: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Section `name` with the active profile's overrides (`profiles.<profile>.<name>`) merged over it."""
    profile = data.get("profile", "cpu")
    profiles = data.get("profiles") or {}
    if profile not in profiles and profile != "cpu":
        raise PipelineError(
            f"{path}: profile {profile!r} is not defined under `profiles` ({', '.join(profiles)})."
        )
    return deep_merge(data.get(name) or {}, (profiles.get(profile) or {}).get(name) or {})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value)
            if isinstance(merged.get(key), dict) and isinstance(value, dict)
            else value
        )
    return merged


def build(cls: type[T], mapping: Any, where: str) -> T:
    """Build dataclass `cls` from `mapping`, rejecting unknown keys and wrong types by name."""
    if not isinstance(mapping, dict):
        raise PipelineError(f"{where}: expected a mapping, got {type(mapping).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(fields)}.")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in mapping.items()}
    try:
        return cls(**values)
    except ValueError as err:
        raise PipelineError(f"{where}: {err}.") from err


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise PipelineError(f"{where}: expected a list, got {value!r}.")
        return [_coerce(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PipelineError(f"{where}: expected a mapping, got {value!r}.")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise PipelineError(f"{where}: expected {hint.__name__}, got {value!r} ({type(value).__name__}).")
    return value
