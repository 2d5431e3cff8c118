"""Expert episodes: what the environment itself would play for a perfect searcher, built by the agent's own
functions (`take_turn`, `close_episode`), so their token ids are exactly those a rollout would produce.

An episode searches with the question's words, gets the real results the index returns (the same window and
formatting as in training) and answers with the gold answer, kept only when the results show it. A retry
episode is for a question whose first results miss the answer: it searches again with other words from the
gold passage, never the answer's (`retry_queries`), whose results do show it, then answers. Each kind of turn
has its own opening words (search: "I ...", retry: "The results do not ...", answer: "Based on result N,
..."), so the first sampled word decides the turn's kind.

The warm start trains on them (rezero/training/warmstart.py); the `passrate` stage scores training
questions by the answer's likelihood after them (rezero/training/passrate.py).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field

from rezero.episode.agent import ChatTemplate, SearchEnvironment, Trajectory, close_episode, take_turn
from rezero.episode.answers import first_result_showing
from rezero.episode.judges import normalize_answer

log = logging.getLogger(__name__)

# Think texts drawn at random, so the loss is spent on the protocol rather than on one memorised sentence.
SEARCH_THINKS = (
    "I need to search the document.",
    "I will search the report for this.",
    "I should look this up in the document.",
    "I do not know this yet, so I will search.",
    "I will search the mission report.",
)
# After results that do not show the answer: analyse them and search again (rewards.py, search_strategy).
RETRY_THINKS = (
    "The results do not show it, so I will search again with other words.",
    "The results do not answer this; I will try another query.",
    "The results do not say it. I will search differently.",
)
# Each names the result that shows the answer and analyses it (rewards.py, search_strategy).
ANSWER_THINKS = (
    "Based on result {n}, I found the answer.",
    "Based on result {n}, the answer is clear.",
    "Based on result {n}, this answers the question.",
    "Based on result {n}, the information shows it.",
    "Based on result {n}, I can answer now.",
)
# Words that carry no search meaning; the rest of the question is the query.
QUESTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "what which who whom whose when where why how was were is are did do does the a an of in on at to "
        "for by with and or during after before",
    )
)
# Also left out of a retry's query: function words a passage has and a searcher would not type.
PASSAGE_STOPWORDS = QUESTION_WORDS | frozenset(
    re.findall(
        r"\w+",
        "be been being it its this that these those from as but not no had has have there their they them "
        "he she his her we our were into than then also which while would could should will can may about "
        "over under between all any each other such only very more most some",
    )
)
RETRY_QUERY_WORDS = (4, 6, 8)  # reformulations tried, shortest first: the passage words nearest the answer
RETRY_WINDOW = 300  # characters either side of the answer in its chunk the reformulation draws on


@dataclass
class ExpertSet:
    """The expert episodes, the records they answer, and how many questions were skipped and why."""

    episodes: list[Trajectory]
    records: list[dict]
    counts: dict[str, int] = field(default_factory=dict)


def derive_query(question: str) -> str:
    """The question's content words, in order: what a searcher would type.

    >>> derive_query("How many hours did the crew sleep on the second day?")
    'many hours crew sleep second day'
    """
    words = re.findall(r"[\w'./:-]+", question)
    kept = [w.strip(".:") for w in words if w.lower() not in QUESTION_WORDS]
    return " ".join(w for w in kept if w) or question.strip()


def retry_queries(record: dict) -> list[str]:
    """Reformulations for a second search: the gold passage's words nearest the answer that are neither in
    the question nor in the answer (nor function words), 4, 6 or 8 of them. Empty when the chunk is unknown.

    >>> retry_queries({"question": "What failed?", "answer": "the fan",
    ...                "chunk_text": "Cabin pressure dropped when the fan in oxygen tank two failed."})[0]
    'oxygen tank dropped two'
    """
    chunk, answer = record.get("chunk_text") or "", record["answer"]
    at = chunk.casefold().find(answer.casefold())
    if at < 0:
        return []
    banned = _tokens(record["question"]) | _tokens(answer)
    window = chunk[max(0, at - RETRY_WINDOW) : at + len(answer) + RETRY_WINDOW]
    centre = at - max(0, at - RETRY_WINDOW) + len(answer) / 2
    found: dict[str, float] = {}
    for match in re.finditer(r"[A-Za-z][\w'-]+", window):
        word = match.group().casefold()
        if (
            len(word) > 2
            and word not in PASSAGE_STOPWORDS
            and not _tokens(word) & banned
            and word not in found
        ):
            found[word] = abs(match.start() - centre)
    nearest = sorted(found, key=found.get)
    return list(dict.fromkeys(" ".join(nearest[:n]) for n in RETRY_QUERY_WORDS)) if nearest else []


def _tokens(text: str) -> set[str]:
    """Every spelling of the text's words the judge could match: whole ("s-band", "sband") and split
    ("s", "band")."""
    split = normalize_answer(text, " ").split()
    return set(text.casefold().split()) | set(normalize_answer(text).split()) | set(split)


def _turn_ids(template: ChatTemplate, text: str) -> list[int]:
    return template.text_ids(text)  # a question's words or a gold answer never become control tokens


def _shown_in_last_search(episode: Trajectory, answer: str) -> int | None:
    if episode.done or not episode.retrieved:  # the results did not fit the token budget
        return None
    return first_result_showing(answer, [hit["shown"] for hit in episode.retrieved[-1]])


def expert_episode(
    record: dict, template: ChatTemplate, env: SearchEnvironment, rng: random.Random, retry: bool = False
) -> Trajectory | None:
    """One demonstration: a search with the question's words, its real results, then the gold answer when
    they show it. With `retry`, only for a question whose first results do not show the answer: a second
    search (`retry_queries`, the first reformulation whose results show it), then the answer. None when the
    episode cannot be demonstrated that way."""
    question = record["question"]
    episode = Trajectory(question=question, prompt_ids=template.prompt_ids(question))
    search_turn = f"<think>{rng.choice(SEARCH_THINKS)}</think>\n<search>{derive_query(question)}</search>"
    take_turn(episode, _turn_ids(template, search_turn), template, env)
    shown = _shown_in_last_search(episode, record["answer"])
    if episode.done or (shown is None) != retry:
        return None
    if retry:
        query = next(
            (q for q in retry_queries(record) if first_result_showing(record["answer"], _shown(env, q))),
            None,
        )
        if query is None:
            return None
        retry_turn = f"<think>{rng.choice(RETRY_THINKS)}</think>\n<search>{query}</search>"
        take_turn(episode, _turn_ids(template, retry_turn), template, env)
        shown = _shown_in_last_search(episode, record["answer"])
        if shown is None:
            return None
    answer_turn = (
        f"<think>{rng.choice(ANSWER_THINKS).format(n=shown)}</think>\n<answer>{record['answer']}</answer>"
    )
    take_turn(episode, _turn_ids(template, answer_turn), template, env)
    close_episode(episode, template)
    return episode


def _shown(env: SearchEnvironment, query: str) -> list[str]:
    return [hit.shown for hit in env.search(query)]


def warn_few_retries(made: int, asked: int, retry_share: float) -> None:
    log.warning(
        "warm start: %d retry demonstrations of the %d asked (warmstart.retry_share %.2f): too few "
        "training questions whose second search shows the answer; single searches fill their place",
        made,
        asked,
        retry_share,
    )


def build_expert_set(
    records: list[dict],
    template: ChatTemplate,
    env: SearchEnvironment,
    episodes: int,
    retry_share: float,
    seed: int,
) -> ExpertSet:
    """Up to `episodes` demonstrations from `records` in a seeded order: `round(episodes * retry_share)` of
    them retries (questions whose first search does not show the answer), the rest single searches. Too few
    retries possible (a short window or token budget): single searches take their place, with a warning."""
    rng = random.Random(seed)
    order = list(records)
    rng.shuffle(order)
    want_retries = round(episodes * retry_share)
    single: list[tuple[int, Trajectory]] = []  # (position in `order`, episode)
    retried: list[tuple[int, Trajectory]] = []
    tried: set[int] = set()
    for i, record in enumerate(order):
        if len(single) + len(retried) >= episodes:
            break
        tried.add(i)
        episode = (
            expert_episode(record, template, env, rng) if len(single) < episodes - want_retries else None
        )
        if episode is not None:
            single.append((i, episode))
            continue
        episode = (
            expert_episode(record, template, env, rng, retry=True) if len(retried) < want_retries else None
        )
        if episode is not None:
            retried.append((i, episode))
    if len(retried) < want_retries:
        warn_few_retries(len(retried), want_retries, retry_share)
        used = {i for i, _ in single + retried}
        for i, record in enumerate(order):
            if len(single) + len(retried) >= episodes:
                break
            if i not in used:
                tried.add(i)
                episode = expert_episode(record, template, env, rng)
                if episode is not None:
                    single.append((i, episode))
    chosen = sorted(single + retried, key=lambda pair: pair[0])
    return ExpertSet(
        episodes=[episode for _, episode in chosen],
        records=[order[i] for i, _ in chosen],
        counts={
            "questions": len(records),
            "skipped": len(tried) - len(chosen),
            "episodes": len(chosen),
            "retry_episodes": len(retried),
        },
    )
