"""The six ReZero rewards (the paper, arXiv 2504.11001, and its code) as TRL reward functions. "Paper code"
below names a function of the paper's reward module, `src/rewards.py` in github.com/menloresearch/ReZero.

Each reward has TRL's signature `reward(completions, **kwargs) -> list[float]`: one score per completion, in
order. `completions` is TRL's decode of the whole trajectory, injected text and role names included,
so the rewards read the fields the rollout passes per row instead:

- `turns`: the model's own messages, in order (text only);
- `queries`: the queries the environment ran (the last `<search>` of each turn that had one);
- `retrieved`: for each query, the hits shown, as dicts `{"chunk_id", "text", "shown", "original"}`;

and the dataset columns `question`, `answer` (gold) and `chunk_text` (the gold chunk). A missing field reads
as empty; without `turns`, conversational completions fall back to their assistant messages. No reward raises
on what the model wrote: unbalanced tags, empty turns and None are scored (usually 0). Every reward's
`__name__` is its registry name, which TRL uses as the metric key (`rewards/retry/mean`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from difflib import SequenceMatcher
from typing import Any

from rezero.core.config import RetrySchedule, RewardParams, RewardWeights
from rezero.episode.answers import first_query_showing
from rezero.episode.judges import Judge, NormalizedMatchJudge, make_judge
from rezero.episode.protocol import (
    ANSWER_RE,
    SEARCH_RE,
    THINK_RE,
    as_text,
    count_searches,
    extract_answer,
    has_answer,
    has_information_tag,
    has_markdown_tag,
    has_search,
    has_think,
    last_search,
)

REWARD_NAMES = tuple(f.name for f in fields(RewardWeights))  # correctness, format, retry, em_chunk, ...

# search_strategy's fixed shape (paper code, reward_search_strategy): parts sum to at most 1.
STRATEGY_OPENING, STRATEGY_REFINEMENT, STRATEGY_REFINEMENT_MAX, STRATEGY_SYNTHESIS = 0.2, 0.2, 0.4, 0.4
# A think "analyses results" when it uses one of these words (the paper code's list, case-insensitive).
ANALYSIS_RE = re.compile(r"\b(?:based|according|from|results?|found|shows?|provided|information)\b", re.I)
# search_diversity's fixed shape (paper code, reward_search_diversity).
DIVERSITY_SINGLE, DIVERSITY_PER_DISTINCT, DIVERSITY_DISTINCT_MAX, DIVERSITY_SPREAD = 0.2, 0.2, 0.4, 0.4
NEAR_DUPLICATE_RATIO, NEAR_DUPLICATE_PENALTY, EXACT_DUPLICATE_PENALTY = 0.8, 0.1, 0.2


# -------------------- row access
def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    """Field `name`, one value per completion (all None when absent). A length mismatch is a rollout bug."""
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"reward field {name!r} has {len(values)} rows for {n} completions")
    return list(values)


def _items(value: Any) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else []


def _as_turns(value: Any) -> list[str]:
    return [as_text(turn) for turn in value] if isinstance(value, list | tuple) else []


def _turns_per_row(completions: list[Any], kwargs: Mapping[str, Any]) -> list[list[str]]:
    """Each row's model turns: the `turns` field, else a conversational completion's assistant messages."""
    if kwargs.get("turns") is not None:
        return [_as_turns(turns) for turns in _column(kwargs, "turns", len(completions))]
    return [_as_turns(_assistant_texts(completion)) for completion in completions]


def _rows(completions: list[Any], kwargs: Mapping[str, Any], *names: str) -> list[tuple[Any, ...]]:
    """Per completion: its turns, then the fields `names` (None where absent)."""
    columns = [_column(kwargs, name, len(completions)) for name in names]
    return list(zip(_turns_per_row(completions, kwargs), *columns, strict=True))


def _assistant_texts(completion: Any) -> list[Any]:
    if isinstance(completion, str):
        return [completion]
    if isinstance(completion, list | tuple):
        return [m.get("content") for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
    return []


def _plain(value: Any) -> str:
    """Dataset text (a gold answer, a chunk) as a stripped string; None reads as ""."""
    return "" if value is None else str(value).strip()


# -------------------- correctness
def make_correctness_reward(judge: Judge | None = None) -> Callable[..., list[float]]:
    """The correctness reward (weight 4 in the paper), judged by `judge`.

    Rule (binary): 1.0 when the last turn holds an `<answer>` pair and no `<search>` pair nor information tag,
    and `judge(question, answer, gold)` says the content of its last `<answer>` matches the gold `answer`.
    The paper's judge was an LLM asked Yes/No (the frozen base model) and it was shown the whole final
    message; here it sees the extracted answer, and the default judge is the deterministic
    `NormalizedMatchJudge()`. An empty answer or gold scores 0 without asking the judge.

    Args:
        judge: any `(question, prediction, gold) -> bool`; default `NormalizedMatchJudge()`. It must pickle.

    Returns:
        A picklable reward whose `__name__` is `"correctness"`.

    >>> reward = make_correctness_reward()
    >>> turns = [["<think>t</think><search>q</search>", "<think>ok</think><answer>The Moon.</answer>"],
    ...          ["<think>t</think><answer>moon</answer><search>q</search>"]]
    >>> reward([None, None], turns=turns, answer=["moon", "moon"], question=["Where?", "Where?"])
    [1.0, 0.0]
    """
    judge = NormalizedMatchJudge() if judge is None else judge
    if not callable(judge):
        raise ValueError(f"judge must be callable as judge(question, prediction, gold), got {judge!r}")
    return _Correctness(judge)


class _Correctness:
    # A class, not a closure, so it pickles (TRL may send reward funcs to another process).
    __name__ = "correctness"

    def __init__(self, judge: Judge):
        self.judge = judge

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        rows = _rows(completions, kwargs, "question", "answer")
        return [self.score(turns, question, gold) for turns, question, gold in rows]

    def score(self, turns: list[str], question: Any, gold: Any) -> float:
        final = turns[-1] if turns else ""
        prediction, gold = extract_answer(final), _plain(gold)
        if not prediction or not gold or has_search(final) or has_information_tag(final):
            return 0.0
        return 1.0 if self.judge(_plain(question), prediction, gold) else 0.0


# -------------------- format
def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """The format reward (weight 2): does the episode end on a well-formed answer turn?

    Rule (binary, on the last turn; after paper code `reward_format`): 1.0 only if all hold:
    no Markdown-decorated tag (`**<think>**`); no information tag written by the model (any case, `<info>`
    too; the code looks for complete pairs, here any such tag fails); exactly one `<answer>` pair and no
    `<search>` pair (the code lets two answers plus a search pass); at least one `<think>` pair, the last
    `</think>` before the `<answer>`; and the text, stripped, ends with `</answer>`.
    The paper's rule, and its code, equally accept a last turn that is a well-formed search (one or more
    `<search>` pairs ending with `</search>`). Here that scores 0: a last turn that searches means the
    episode was cut by the turn limit or the token budget without answering, and paying for it made three
    searches and no answer score about as much as answering.

    Args:
        completions: one entry per rollout (only used when `turns` is absent).
        **kwargs: `turns`; anything else is ignored.

    Returns:
        `list[float]`: 1.0 or 0.0 per completion.

    >>> search, answer = "<think>x</think><search>q</search>", "<think>x</think><answer>y</answer>"
    >>> format_reward([None] * 4, turns=[[search, answer], [search, search], ["<answer>y</answer>"],
    ...     ["<think>x</think><search>q</search><answer>y</answer>"]])
    [1.0, 0.0, 0.0, 0.0]
    """
    return [_format_score(turns[-1]) if turns else 0.0 for turns in _turns_per_row(completions, kwargs)]


def _format_score(text: str) -> float:
    if has_markdown_tag(text) or has_information_tag(text) or not has_think(text):
        return 0.0
    if has_search(text) or len(ANSWER_RE.findall(text)) != 1:
        return 0.0
    if text.rfind("</think>") > text.find("<answer>"):
        return 0.0
    return 1.0 if text.strip().endswith("</answer>") else 0.0


format_reward.__name__ = "format"  # metric key rewards/format/...


def _settings(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """`cls(**values)`, naming unknown keys (typos such as `retyr`) instead of a TypeError."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    return cls(**values)


# -------------------- retry
def make_retry_reward(**schedule: Any) -> Callable[..., list[float]]:
    """The retry reward (weight 1), ReZero's contribution: reward searching again.

    Rule (paper code `reward_retry`): 0 unless the last turn holds an `<answer>` pair. With n the number of
    `<search>` pairs across all turns: n = 0 gives 0, else `min(1, base + step * min(n, cap))`, i.e.
    0.35, 0.50, 0.65, 0.80, 0.95 for 1..5+ searches with the paper's; multiplied by `violation_factor`
    (halved) when any single turn holds more than one `<search>`. Rounded to 6 decimals (float noise; the
    code rounds to 3). The paper's text rewards each query *after the first*; its code, followed here, also
    rewards the first. With `after_miss_only`, n stops at the first query whose shown results hold the gold
    `answer` (`rezero.episode.answers.answer_visible`), so a search after results that were enough earns
    nothing: the reward pays for retrying a failed search, not for searching again.

    Args:
        schedule: fields of `rezero.core.config.RetrySchedule` (base, step, cap, violation_factor,
            after_miss_only; defaults and checks there), e.g. `make_retry_reward(base=0.0)`.

    Returns:
        A picklable reward whose `__name__` is `"retry"`; it reads the rows' `turns`, and with
        `after_miss_only` their `retrieved` hits (`shown` text) and gold `answer`.

    >>> retry = make_retry_reward(after_miss_only=False)
    >>> search, answer = "<think>t</think><search>q</search>", "<think>t</think><answer>a</answer>"
    >>> turns = [[search, answer], [search] * 3 + [answer], [search] * 6 + [answer], [search]]
    >>> retry([None] * 4, turns=turns)
    [0.35, 0.65, 0.95, 0.0]
    >>> miss, hit = [{"shown": "other words"}], [{"shown": "at 55 hours"}]
    >>> make_retry_reward()([None] * 2, turns=[[search] * 3 + [answer]] * 2,
    ...     retrieved=[[miss, hit, hit], [hit, miss, miss]], answer=["55 hours"] * 2)
    [0.5, 0.35]
    """
    s = _settings(RetrySchedule, schedule, "retry setting")
    return _Retry(s)


class _Retry:
    # A class, not a closure, so it pickles (TRL may send reward funcs to another process).
    __name__ = "retry"

    def __init__(self, schedule: RetrySchedule):
        self.schedule = schedule

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        rows = _rows(completions, kwargs, "retrieved", "answer")
        return [self.score(turns, retrieved, gold) for turns, retrieved, gold in rows]

    def score(self, turns: list[str], retrieved: Any = None, gold: Any = None) -> float:
        if not turns or not has_answer(turns[-1]):
            return 0.0
        per_turn = [count_searches(turn) for turn in turns]
        searches = sum(per_turn)
        if self.schedule.after_miss_only:
            searches = min(searches, _searches_until_shown(retrieved, _plain(gold)))
        if searches == 0:
            return 0.0
        s = self.schedule
        reward = min(1.0, s.base + s.step * min(searches, s.cap))
        if any(count > 1 for count in per_turn):
            reward *= s.violation_factor
        return round(reward, 6)


def _searches_until_shown(retrieved: Any, gold: str) -> int | float:
    """How many queries ran up to the first whose shown hits hold `gold`; infinite when none did (every
    search counts) or when there is no gold answer to look for."""
    shown = [
        [as_text(hit.get("shown")) for hit in _items(hits) if isinstance(hit, Mapping)]
        for hits in _items(retrieved)
    ]
    first = first_query_showing(gold, shown) if gold else None
    return float("inf") if first is None else first


# -------------------- em_chunk
def em_chunk_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """The em_chunk reward (weight 1): did a search bring up the gold chunk itself?

    Rule (binary; paper code `reward_em_chunk`): 1.0 when the gold `chunk_text`, stripped of surrounding
    whitespace, occurs verbatim (case and spacing exact) inside the text of a retrieved hit whose `original`
    is True. Paraphrased distractors never count, even with identical text. An unknown gold chunk (None or
    empty) scores 0. The code searched the whole `<information>` message for the chunk text.

    Args:
        completions: one entry per rollout (unused).
        **kwargs: `retrieved` (per query, the hits shown) and `chunk_text`; anything else is ignored.

    Returns:
        `list[float]`: 1.0 or 0.0 per completion.

    >>> hit = {"chunk_id": "c7", "text": "The tank failed.", "original": True}
    >>> em_chunk_reward([None, None], retrieved=[[[hit]], [[dict(hit, original=False)]]],
    ...                 chunk_text=["The tank failed.\\n", "The tank failed."])
    [1.0, 0.0]
    """
    n = len(completions)
    rows = zip(_column(kwargs, "retrieved", n), _column(kwargs, "chunk_text", n), strict=True)
    return [_em_chunk_score(retrieved, gold) for retrieved, gold in rows]


def _em_chunk_score(retrieved: Any, gold: Any) -> float:
    if not isinstance(retrieved, list | tuple):
        return 0.0
    hits = (hit for query_hits in retrieved if isinstance(query_hits, list | tuple) for hit in query_hits)
    return 1.0 if any(is_gold_hit(hit, gold) for hit in hits) else 0.0


def is_gold_hit(hit: Any, gold_chunk: Any) -> bool:
    """A hit is the gold chunk when it is an original (not a distractor) holding the gold chunk's text."""
    gold = _plain(gold_chunk)
    return (
        bool(gold)
        and isinstance(hit, Mapping)
        and hit.get("original") is True
        and gold in as_text(hit.get("text"))
    )


em_chunk_reward.__name__ = "em_chunk"  # metric key rewards/em_chunk/...


# -------------------- search_strategy
def search_strategy_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """The search_strategy reward (weight 1): think, search, read the results, then search again or answer.

    Rule (in [0, 1]; paper code `reward_search_strategy`), summed over three parts:
    - 0.2 if some turn has a non-empty `<think>` closing before a `<search>` (an opening search);
    - 0.2 per refinement, at most 0.4: a turn that follows results (the previous turn searched) in which an
      analysing think closes before a `<search>`. A think analyses when it uses one of the words "based",
      "according", "from", "result(s)", "found", "show(s)", "provided", "information" (the code's list);
    - 0.4 if some turn after a searching turn has an analysing think closing before an `<answer>` (a
      synthesis of the results).
    The code counts, over turns after results, searches and analysing thinks separately and takes the smaller
    count, and does not check order within a turn; here both must occur in the same turn, think first. The
    code also gives the synthesis part to an answer without any search before it, so a reasoned answer from
    memory earned 0.4; here it earns nothing.

    Args:
        completions: one entry per rollout (only used when `turns` is absent).
        **kwargs: `turns`; anything else is ignored.

    Returns:
        `list[float]`: 0.0 to 1.0 per completion.

    >>> turns = ["<think>Search the tank.</think><search>oxygen tank</search>",
    ...          "<think>The results show a fan.</think><search>tank fan</search>",
    ...          "<think>Based on that: a fan.</think><answer>a fan</answer>"]
    >>> search_strategy_reward([None] * 3, turns=[turns, turns[:1], turns[2:]])
    [0.8, 0.2, 0.0]
    """
    return [_strategy_score(turns) for turns in _turns_per_row(completions, kwargs)]


def _strategy_score(turns: list[str]) -> float:
    opening = any(_thinks_before(turn, SEARCH_RE, analysing=False) for turn in turns)
    refinements = sum(
        has_search(previous) and _thinks_before(turn, SEARCH_RE, analysing=True)
        for previous, turn in itertools.pairwise(turns)
    )
    synthesis = any(  # an answer from memory is no synthesis: some earlier turn must have searched
        _thinks_before(turn, ANSWER_RE, analysing=True) and any(map(has_search, turns[:i]))
        for i, turn in enumerate(turns)
    )
    score = (
        STRATEGY_OPENING * opening
        + min(STRATEGY_REFINEMENT_MAX, STRATEGY_REFINEMENT * refinements)
        + STRATEGY_SYNTHESIS * synthesis
    )
    return round(score, 6)


def _thinks_before(text: str, action_re: re.Pattern[str], analysing: bool) -> bool:
    """Whether a non-empty think (an analysing one if asked) closes before some `action_re` pair opens."""
    actions = [match.start() for match in action_re.finditer(text)]
    if not actions:
        return False
    return any(
        think.end() <= actions[-1]
        and think.group(1).strip()
        and (not analysing or ANALYSIS_RE.search(think[1]))
        for think in THINK_RE.finditer(text)
    )


search_strategy_reward.__name__ = "search_strategy"  # metric key rewards/search_strategy/...


# -------------------- search_diversity
def search_diversity_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """The search_diversity reward (weight 1): varied queries, not the same one again.

    Rule (in [0, 1]; after paper code `reward_search_diversity`). Queries are the executed `queries` (else
    the last `<search>` of each turn), normalised (lower case, non-word characters to spaces, whitespace
    collapsed); empty ones are dropped. With n queries, d of them distinct, s the mean
    `difflib.SequenceMatcher` ratio over all pairs and k the pairs with 0.8 < ratio < 1 (near-duplicates):
    n = 0 gives 0; n = 1 gives 0.2; otherwise
    `clip(min(0.4, 0.2 d) + 0.4 (1 - s) - 0.1 k - 0.2 (n - d), 0, 1)`.
    The code also gave up to 0.2 for web-search operators (`site:`, quotes, `OR`, `-word`) and scored every
    `<search>` written; the operators mean nothing to this retriever, so that bonus is left out (the maximum
    here is 0.8) and only executed queries count.

    Args:
        completions: one entry per rollout (only used when neither `queries` nor `turns` is given).
        **kwargs: `queries` (else `turns`); anything else is ignored.

    Returns:
        `list[float]`: 0.0 to 1.0 per completion.

    >>> search_diversity_reward([None] * 4, queries=[[], ["tank"], ["oxygen tank", "splashdown site"],
    ...                                                ["oxygen tank", "oxygen tank"]])
    [0.0, 0.2, 0.676923, 0.0]
    """
    n = len(completions)
    rows = zip(_column(kwargs, "queries", n), _turns_per_row(completions, kwargs), strict=True)
    return [_diversity_score(_executed_queries(queries, turns)) for queries, turns in rows]


def _executed_queries(queries: Any, turns: list[str]) -> list[str]:
    if isinstance(queries, list | tuple):
        return [as_text(query) for query in queries]
    return [query for query in map(last_search, turns) if query is not None]


def _diversity_score(queries: list[str]) -> float:
    normalised = [text for text in (" ".join(re.sub(r"\W", " ", q.lower()).split()) for q in queries) if text]
    if len(normalised) <= 1:
        return DIVERSITY_SINGLE * len(normalised)
    distinct = len(set(normalised))
    ratios = [SequenceMatcher(None, a, b).ratio() for a, b in itertools.combinations(normalised, 2)]
    near_duplicates = sum(NEAR_DUPLICATE_RATIO < ratio < 1.0 for ratio in ratios)
    score = (
        min(DIVERSITY_DISTINCT_MAX, DIVERSITY_PER_DISTINCT * distinct)
        + DIVERSITY_SPREAD * (1 - sum(ratios) / len(ratios))
        - NEAR_DUPLICATE_PENALTY * near_duplicates
        - EXACT_DUPLICATE_PENALTY * (len(normalised) - distinct)
    )
    return round(min(1.0, max(0.0, score)), 6)


search_diversity_reward.__name__ = "search_diversity"  # metric key rewards/search_diversity/...


# -------------------- registry
REWARDS: dict[str, Callable[..., list[float]]] = {
    "correctness": make_correctness_reward(),
    "format": format_reward,
    "retry": make_retry_reward(),
    "em_chunk": em_chunk_reward,
    "search_strategy": search_strategy_reward,
    "search_diversity": search_diversity_reward,
}


def reward_funcs_for(params: RewardParams, judge: Judge | None = None) -> list[Callable[..., list[float]]]:
    """The six rewards of params.yaml's `rewards` section, with its judge unless `judge` is given."""
    funcs, _ = build_reward_funcs(params.weights, judge or make_judge(params), params.retry)
    return funcs


def build_reward_funcs(
    weights: RewardWeights | Mapping[str, float],
    judge: Judge | None = None,
    retry: RetrySchedule | Mapping[str, Any] | None = None,
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """The six rewards and their weights, in the fixed order of `REWARD_NAMES`, for `GRPOTrainer`.

    All six are always returned, weight 0 included: TRL still logs a zero-weight reward, so the paper's
    baseline (retry weight 0) logs the same metrics as ReZero and differs from it by that weight only.

    Args:
        weights: a weight (finite, >= 0) for every name in `REWARD_NAMES` (paper: 4, 2, 1, 1, 1, 1), as
            `rezero.core.config.RewardWeights` or a mapping with all six.
        judge: the correctness judge; default `NormalizedMatchJudge()`.
        retry: the retry reward's `rezero.core.config.RetrySchedule`, or a mapping of some of its fields.

    Returns:
        `(reward_funcs, reward_weights)`, ready for `GRPOTrainer(reward_funcs=...)` and
        `GRPOConfig(reward_weights=...)`.

    >>> funcs, weights = build_reward_funcs({"correctness": 4, "format": 2, "retry": 0, "em_chunk": 1,
    ...                                      "search_strategy": 1, "search_diversity": 1})
    >>> [f.__name__ for f in funcs]
    ['correctness', 'format', 'retry', 'em_chunk', 'search_strategy', 'search_diversity']
    >>> weights
    [4.0, 2.0, 0.0, 1.0, 1.0, 1.0]
    """
    if not isinstance(weights, RewardWeights):
        missing = [name for name in REWARD_NAMES if name not in weights]
        if missing and not set(weights) - set(REWARD_NAMES):
            raise ValueError(
                f"no weight for reward(s) {', '.join(missing)}; give all six (0 logs without training)"
            )
        weights = _settings(RewardWeights, weights, "reward")
    if not isinstance(retry, RetrySchedule):
        retry = _settings(RetrySchedule, retry or {}, "retry setting")
    funcs = dict(
        REWARDS, correctness=make_correctness_reward(judge), retry=make_retry_reward(**asdict(retry))
    )
    return [funcs[name] for name in REWARD_NAMES], [float(getattr(weights, name)) for name in REWARD_NAMES]


def reward_columns(trajectories: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The keyword arguments TRL would pass the rewards for these episodes (`rezero.episode.agent.Trajectory`s
    and their QA records), for scoring outside a trainer: evaluation and traces."""
    return {
        "turns": [t.turns for t in trajectories],
        "queries": [t.queries for t in trajectories],
        "retrieved": [t.retrieved for t in trajectories],
        "question": [r["question"] for r in records],
        "answer": [r["answer"] for r in records],
        "chunk_id": [r.get("chunk_id") or "" for r in records],
        "chunk_text": [r.get("chunk_text") or "" for r in records],
    }


def score_episodes(
    trajectories: Sequence[Any], records: Sequence[Mapping[str, Any]], reward_funcs: Sequence[Callable]
) -> dict[str, list[float]]:
    """Each reward's score for each episode, by reward name."""
    columns = reward_columns(trajectories, records)
    completions = [t.turns[-1] if t.turns else "" for t in trajectories]
    return {
        name: list(func(completions, **columns))
        for name, func in zip(REWARD_NAMES, reward_funcs, strict=True)
    }
