"""The search agent: the paper's protocol as one batched multi-turn loop (training, evaluation and `ask`).

The model thinks in `<think>`, searches with `<search>query</search>` or answers with `<answer>…</answer>`.
The environment runs the last search of a turn and injects the results as a user turn
`<information>Result 1:\\n…\\n------\\nResult 2:\\n…</information>`. A turn without a search ends the episode.

Token ids are appended, never re-tokenised (decoding and re-encoding can change them): the completion holds
exactly the sampled ids (env_mask 1, trained) and the injected segments' ids (env_mask 0, masked out of the
loss).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rezero.core.config import AgentParams
from rezero.episode.protocol import extract_answer, extract_searches
from rezero.retrieval import Hit, Retriever

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions about a document by searching it. Think in <think></think>, then either search "
    "with <search>query</search> or answer with <answer>short answer</answer>. If the results do not answer "
    "the question, search again with another query."
)
# One worked episode, as real chat turns, showing a failed search and a retry (`agent.worked_example`). Raw
# SmolLM2-135M followed the protocol in 9 of 24 sampled turns with it (temperature 0.7) and in 0 of 16 with
# instructions alone, but it also copies the example's query for every question; with a warm start
# (rezero/training/warmstart.py) the prompt has no example, like the paper's.
DEMONSTRATION = [
    {"role": "user", "content": "What color was the heat shield?"},
    {
        "role": "assistant",
        "content": "<think>I need to search the document.</think>\n<search>heat shield</search>",
    },
    {"role": "user", "content": "<information>Result 1:\nThe crew inspected the hatch.</information>"},
    {
        "role": "assistant",
        "content": "<think>The results do not say. I will search again.</think>\n"
        "<search>heat shield color paint</search>",
    },
    {"role": "user", "content": "<information>Result 1:\nThe heat shield was painted white.</information>"},
    {
        "role": "assistant",
        "content": "<think>Based on the results, it was white.</think>\n<answer>white</answer>",
    },
]
STOP_STRINGS = ["</search>", "</answer>"]
# Appended to the results before the last allowed turn, so an episode never ends on a search it cannot run.
LAST_TURN_NOTE = "\nNo searches left: answer now with <answer>short answer</answer>."


@dataclass
class Trajectory:
    """One episode: the ids TRL trains on, and what rewards, metrics and `ask` need to read."""

    question: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    turns: list[str] = field(default_factory=list)  # the model's own messages
    queries: list[str] = field(default_factory=list)  # executed queries, one per search turn
    retrieved: list[list[dict]] = field(default_factory=list)  # hits shown for each query
    information: list[str] = field(default_factory=list)  # injected texts, for display
    stop_reason: str = ""  # answer | no_search | max_turns | token_budget
    # Wall-clock (start, end) in ns of each turn's batched generation and of each search, for traces.
    turn_times: list[tuple[int, int]] = field(default_factory=list)
    search_times: list[tuple[int, int]] = field(default_factory=list)
    turn_tokens: list[int] = field(default_factory=list)  # ids the model wrote in each turn

    @property
    def done(self) -> bool:
        return bool(self.stop_reason)

    @property
    def answer(self) -> str | None:
        return extract_answer(self.turns[-1]) if self.turns else None

    def messages(self) -> list[dict[str, str]]:
        """The conversation after the prompt, as chat messages (for logs, samples and `ask`)."""
        messages = []
        for i, turn in enumerate(self.turns):
            messages.append({"role": "assistant", "content": turn})
            if i < len(self.information):
                messages.append({"role": "user", "content": self.information[i]})
        return messages


def prompt_messages(question: str, worked_example: bool = False) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *(DEMONSTRATION if worked_example else []),
        {"role": "user", "content": question},
    ]


def format_information(hits: Sequence[Hit]) -> str:
    """The paper's result block: each hit's window when the search made one (`agent.result_chars`), else
    its whole chunk."""
    if not hits:
        return "<information>No results found.</information>"
    shown = [hit.shown for hit in hits]
    results = [f"Result {i}:\n{text}" for i, text in enumerate(shown, 1)]
    return "<information>" + "\n------\n".join(results) + "</information>"


class SearchEnvironment:
    """The search tool as the agent sees it: top-k results, optionally with distractors mixed in."""

    def __init__(self, retriever: Retriever, params: AgentParams, seed: int = 0) -> None:
        self.retriever = retriever
        self.params = params
        self._rng = random.Random(seed)

    def search(self, query: str) -> list[Hit]:
        # Each hit comes with the engine's window around its best-matching passage (None: whole chunks).
        k, chars = self.params.top_k, self.params.result_chars
        if self.params.noise_share <= 0:
            return self.retriever.search(query, k, snippet_chars=chars)
        # Noise: fill a share of the k slots with the best-ranked distractors instead of originals.
        pool = self.retriever.search(query, k * 4, snippet_chars=chars)
        originals = [h for h in pool if h.original]
        distractors = [h for h in pool if not h.original]
        hits = []
        for _ in range(min(k, len(pool))):
            use_distractor = distractors and (not originals or self._rng.random() < self.params.noise_share)
            hits.append((distractors if use_distractor else originals).pop(0))
        return hits


class ChatTemplate:
    """Prompt ids and the injected segment for any chat template, found by rendering it around markers.

    The template's own parts are encoded with their special tokens; the question and the search results are
    encoded as plain text (`split_special_tokens`), so a question or a document holding `<|im_end|>` or
    `<|im_start|>assistant` stays characters and can never open or close a turn."""

    def __init__(self, tokenizer: Any, worked_example: bool = False) -> None:
        self.tokenizer = tokenizer
        self.worked_example = worked_example
        marker_q, marker_a, marker_i = "\u0001Q\u0001", "\u0001A\u0001", "\u0001I\u0001"
        prompt = tokenizer.apply_chat_template(
            prompt_messages(marker_q, worked_example), tokenize=False, add_generation_prompt=True
        )
        self.prompt_head, self.prompt_tail = prompt.split(marker_q, 1)
        rendered = tokenizer.apply_chat_template(
            [
                *prompt_messages("q", worked_example),
                {"role": "assistant", "content": marker_a},
                {"role": "user", "content": marker_i},
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
        after_answer = rendered.split(marker_a, 1)[1]
        self.head, self.tail = after_answer.split(marker_i, 1)  # e.g. "<|im_end|>\n<|im_start|>user\n", ...
        self.end_of_turn_ids = end_of_turn_ids(tokenizer)
        self.end_of_turn_text = tokenizer.decode(self.end_of_turn_ids[0])

    def template_ids(self, text: str) -> list[int]:
        """The chat template's own text, its special tokens as control tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def text_ids(self, text: str) -> list[int]:
        """User or document text: special-token strings in it are encoded as the characters they are."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def prompt_ids(self, question: str) -> list[int]:
        head, tail = self.template_ids(self.prompt_head), self.template_ids(self.prompt_tail)
        return head + self.text_ids(question) + tail

    def injection_ids(self, information: str, model_closed_turn: bool) -> list[int]:
        """The ids between the model's turn and its next turn: end of turn (unless the model wrote it),
        the user turn with the information, and the assistant header."""
        head = self.head
        if model_closed_turn and head.startswith(self.end_of_turn_text):
            head = head[len(self.end_of_turn_text) :]
        return self.template_ids(head) + self.text_ids(information) + self.template_ids(self.tail)


def check_questions(
    records: Sequence[dict], source: str, template: ChatTemplate, max_tokens: int, fields: Sequence[str]
) -> None:
    """Refuse in one line, naming `source` and the rows, a set without questions, rows without a non-empty
    string in each of `fields`, and questions longer than `max_tokens` (the episode's budget,
    `agent.max_trajectory_tokens`: a question longer than a whole episode cannot be searched for)."""
    from rezero.core.errors import PipelineError

    if not records:
        raise PipelineError(f"{source}: no questions; give a JSONL file with `question` and `answer` rows.")
    empty = [n for n, r in enumerate(records, 1) if not all(_text(r.get(k)) for k in fields)]
    if empty:
        named = " and ".join(f"`{k}`" for k in fields)
        raise PipelineError(f"{source}: rows {empty[:10]} lack a non-empty {named} string.")
    long = [n for n, r in enumerate(records, 1) if len(template.text_ids(r["question"])) > max_tokens]
    if long:
        raise PipelineError(
            f"{source}: the questions of rows {long[:10]} are longer than {max_tokens} tokens "
            "(agent.max_trajectory_tokens); shorten them."
        )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")]
    ids = [i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id and i is not None]
    return ids or [tokenizer.eos_token_id]


def run_episodes(
    model: Any,
    tokenizer: Any,
    env: SearchEnvironment,
    questions: Sequence[str],
    *,
    temperature: float = 1.0,
    greedy: bool = False,
) -> list[Trajectory]:
    """Run one episode per question, batching every active episode's turn into one `generate` call.

    The batch keeps its KV cache from turn to turn, so each token is encoded once: a turn feeds only the
    ids added since the last one (the injected results), instead of the whole conversation again.
    """
    template = ChatTemplate(tokenizer, env.params.worked_example)
    trajectories = [Trajectory(question=q, prompt_ids=template.prompt_ids(q)) for q in questions]
    batch = CachedBatch(rows=[CachedRow() for _ in trajectories])
    active = list(trajectories)
    for _ in range(env.params.max_turns):
        started = time.time_ns()
        new_tokens = generate_turns(model, template, active, batch, env.params, temperature, greedy)
        generated = time.time_ns()
        for trajectory, tokens in zip(active, new_tokens, strict=True):
            trajectory.turn_times.append((started, generated))
            take_turn(trajectory, tokens, template, env)
        batch.keep([not t.done for t in active])
        active = [t for t in active if not t.done]
        if not active:
            break
    for trajectory in trajectories:
        if not trajectory.done:
            trajectory.stop_reason = "max_turns"
        close_episode(trajectory, template)
    return trajectories


@dataclass
class CachedRow:
    """One episode's row of the batch as the KV cache holds it. Rows stay aligned by padding (mask 0)
    wherever one has fewer new ids than another; the unmasked ids are the episode's, in order."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)

    def extend(self, ids: list[int], own: int) -> None:
        """Append `ids`, of which the first `own` are the episode's and the rest are masked."""
        self.ids += ids
        self.mask += [1] * own + [0] * (len(ids) - own)

    @property
    def synced(self) -> int:
        """How many of the episode's ids the row already holds."""
        return sum(self.mask)


@dataclass
class CachedBatch:
    rows: list[CachedRow]
    cache: Any = None  # transformers' DynamicCache of every row, all but each row's last id

    def append(self, pending: list[list[int]], pad: int) -> None:
        """Add each row's new ids, padded in front to a common width."""
        width = max(len(p) for p in pending)
        for row, ids in zip(self.rows, pending, strict=True):
            row.extend([pad] * (width - len(ids)), own=0)
            row.extend(ids, own=len(ids))

    def keep(self, keep: list[bool]) -> None:
        """Drop the rows of finished episodes, from the rows and from the cache."""
        if all(keep):
            return
        indices = [i for i, k in enumerate(keep) if k]
        self.rows = [self.rows[i] for i in indices]
        if self.cache is not None and indices:
            import torch

            self.cache.batch_select_indices(torch.tensor(indices))


def generate_turns(
    model: Any,
    template: ChatTemplate,
    active: list[Trajectory],
    batch: CachedBatch,
    params: AgentParams,
    temperature: float,
    greedy: bool,
) -> list[list[int]]:
    """One model turn for each active episode; returns each row's new ids with padding removed."""
    import torch

    tokenizer = template.tokenizer
    pad = tokenizer.pad_token_id
    pending = [(t.prompt_ids + t.completion_ids)[r.synced :] for t, r in zip(active, batch.rows, strict=True)]
    batch.append(pending, pad)
    width = len(batch.rows[0].ids)
    budget = min(
        params.max_turn_tokens, max(params.max_trajectory_tokens - len(t.completion_ids) for t in active)
    )
    sampling = (
        {"do_sample": False}
        if greedy
        else {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    )
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor([r.ids for r in batch.rows]),
            attention_mask=torch.tensor([r.mask for r in batch.rows]),
            past_key_values=batch.cache,
            max_new_tokens=max(1, budget),
            stop_strings=STOP_STRINGS,
            tokenizer=tokenizer,
            eos_token_id=template.end_of_turn_ids,
            pad_token_id=pad,
            return_dict_in_generate=True,
            **sampling,
        )
    batch.cache = output.past_key_values
    turns = []
    for row, generated in zip(batch.rows, output.sequences[:, width:].tolist(), strict=True):
        own = cut_turn(generated, template, tokenizer)
        # Everything generated stays in the cache; what follows the turn's end is masked from now on.
        row.extend(generated, own=len(own))
        turns.append(own)
    return turns


def cut_turn(ids: list[int], template: ChatTemplate, tokenizer: Any) -> list[int]:
    """A row's own tokens. Pad equals end-of-turn for SmolLM2, so an end token after a stop string is
    padding (the row had already stopped), while one before any stop string is the model's own."""
    end = next((i for i, t in enumerate(ids) if t in template.end_of_turn_ids), None)
    if end is None:
        return ids
    text = tokenizer.decode(ids[:end])
    stopped_by_string = any(s in text for s in STOP_STRINGS)
    return ids[:end] if stopped_by_string else ids[: end + 1]


def take_turn(
    trajectory: Trajectory, tokens: list[int], template: ChatTemplate, env: SearchEnvironment
) -> None:
    """Append the model's tokens, then either end the episode or run its last search and inject results."""
    tokenizer = template.tokenizer
    trajectory.completion_ids += tokens
    trajectory.env_mask += [1] * len(tokens)
    trajectory.turn_tokens.append(len(tokens))
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    trajectory.turns.append(text)
    searches = extract_searches(text)
    if not searches:
        trajectory.stop_reason = "answer" if extract_answer(text) is not None else "no_search"
        return
    query = searches[-1]
    started = time.time_ns()
    hits = env.search(query)
    searched = time.time_ns()
    information = format_information(hits)
    if len(trajectory.turns) == env.params.max_turns - 1:  # the next turn is the last one allowed
        information += LAST_TURN_NOTE
    closed = bool(tokens) and tokens[-1] in template.end_of_turn_ids
    injected = template.injection_ids(information, model_closed_turn=closed)
    if len(trajectory.completion_ids) + len(injected) >= env.params.max_trajectory_tokens:
        trajectory.stop_reason = "token_budget"
        return
    trajectory.queries.append(query)
    trajectory.search_times.append((started, searched))
    trajectory.retrieved.append(
        [
            {
                "chunk_id": h.chunk_id,
                "text": h.text,
                "shown": h.shown,
                "original": h.original,
                "score": h.score,
            }
            for h in hits
        ]
    )
    trajectory.information.append(information)
    trajectory.completion_ids += injected
    trajectory.env_mask += [0] * len(injected)


def close_episode(trajectory: Trajectory, template: ChatTemplate) -> None:
    """End on an end-of-turn token so TRL counts the episode as terminated; it was not sampled, so masked."""
    if not trajectory.completion_ids or trajectory.completion_ids[-1] not in template.end_of_turn_ids:
        trajectory.completion_ids.append(template.end_of_turn_ids[0])
        trajectory.env_mask.append(0)
