"""The supervised warm start: teach the search protocol from expert episodes, then let GRPO take over.

Models below ~0.5B do not pick up tool use from RL alone; R1-Searcher and DeepSeek-R1 first teach the format
(a cold start). Here an expert episode is what the environment itself would play for a perfect searcher:
the question, a `<search>` whose query is the question's words, the real results the index returns for it
(the same window and formatting as in training), and an `<answer>` with the gold answer. When those results
do not show the answer, a share of the episodes (`warmstart.retry_share`) demonstrates a retry instead: a
second search with other words from the gold passage (never the answer's), whose results do show it, then
the answer. A warm start that never searched twice gave the retry reward nothing to reinforce. ReZero and its
baseline continue the same adapter, so the comparison still isolates the retry reward.

Each episode is built by the agent's own functions (`take_turn`, `close_episode`), so its token ids are
exactly those the rollout would produce, and trained with TRL's `SFTTrainer` on the pre-tokenised ids with
`assistant_masks` = the rollout's `env_mask`: the loss covers the model's turns and never the injected
results. Each kind of turn has its own opening words (search: "I …", retry: "The results do not …", answer:
"Based on result N, …"), so the first sampled word decides the turn's kind. The stage then measures the
adapter on the dev split: greedy (answered share, accuracy) and sampled at the training temperature (how
often it searches again).
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from rezero.agent import ChatTemplate, SearchEnvironment, Trajectory, close_episode, take_turn
from rezero.config import AgentParams, TrainParams, WarmstartParams
from rezero.judges import Judge, normalize_answer
from rezero.visibility import first_result_showing

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
        if len(word) > 2 and word not in PASSAGE_STOPWORDS and not _tokens(word) & banned and word not in found:
            found[word] = abs(match.start() - centre)
    nearest = sorted(found, key=found.get)
    return list(dict.fromkeys(" ".join(nearest[:n]) for n in RETRY_QUERY_WORDS)) if nearest else []


def _tokens(text: str) -> set[str]:
    """Every spelling of the text's words the judge could match: whole ("s-band", "sband") and split
    ("s", "band")."""
    split = normalize_answer(text, " ").split()
    return set(text.casefold().split()) | set(normalize_answer(text).split()) | set(split)


def _turn_ids(template: ChatTemplate, text: str) -> list[int]:
    return template.tokenizer(text, add_special_tokens=False)["input_ids"]


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


def build_expert_set(
    records: list[dict],
    template: ChatTemplate,
    env: SearchEnvironment,
    episodes: int,
    retry_share: float,
    seed: int,
) -> ExpertSet:
    """Up to `episodes` demonstrations from `records` in a seeded order: `round(episodes * retry_share)` of
    them retries (questions whose first search does not show the answer), the rest single searches."""
    rng = random.Random(seed)
    order = list(records)
    rng.shuffle(order)
    want_retries = round(episodes * retry_share)
    single: list[tuple[dict, Trajectory]] = []
    retried: list[tuple[dict, Trajectory]] = []
    skipped = 0
    for record in order:
        if len(single) + len(retried) >= episodes:
            break
        episode = (
            expert_episode(record, template, env, rng) if len(single) < episodes - want_retries else None
        )
        if episode is not None:
            single.append((record, episode))
            continue
        episode = (
            expert_episode(record, template, env, rng, retry=True) if len(retried) < want_retries else None
        )
        if episode is not None:
            retried.append((record, episode))
        else:
            skipped += 1
    if len(retried) < want_retries:
        log.warning(
            "warm start: %d retry demonstrations of the %d asked (warmstart.retry_share %.2f): too few "
            "training questions whose second search shows the answer",
            len(retried),
            want_retries,
            retry_share,
        )
    chosen = sorted(single + retried, key=lambda pair: order.index(pair[0]))
    return ExpertSet(
        episodes=[episode for _, episode in chosen],
        records=[record for record, _ in chosen],
        counts={
            "questions": len(records),
            "skipped": skipped,
            "episodes": len(chosen),
            "retry_episodes": len(retried),
        },
    )


def sft_rows(episodes: list[Trajectory]) -> list[dict[str, list[int]]]:
    """Pre-tokenised SFT examples: the whole episode, loss on the model's own tokens (env_mask 1) only."""
    return [
        {
            "input_ids": e.prompt_ids + e.completion_ids,
            "assistant_masks": [0] * len(e.prompt_ids) + e.env_mask,
        }
        for e in episodes
    ]


def behaviour(trajectories: list[Trajectory], records: list[dict], judge: Judge) -> dict[str, float]:
    """How the warm-started model plays questions it was not trained on: answered (after seeing results),
    searches, how often it searched again, accuracy. `records` are repeated to match sampled runs."""
    n = max(len(trajectories), 1)
    repeats = len(trajectories) // max(len(records), 1)
    correct = sum(
        t.answer is not None and judge(r["question"], t.answer, r["answer"])
        for t, r in zip(trajectories, records * repeats, strict=True)
    )
    return {
        "answered_after_results": sum(t.answer is not None and bool(t.queries) for t in trajectories) / n,
        "answered_share": sum(t.answer is not None for t in trajectories) / n,
        "searches_per_question": sum(len(t.queries) for t in trajectories) / n,
        "second_search_share": sum(len(t.queries) >= 2 for t in trajectories) / n,
        "accuracy": correct / n,
        "episodes": len(trajectories),
    }


def mean_tokens(episodes: list[Trajectory]) -> dict[str, float]:
    n = max(len(episodes), 1)
    return {
        "tokens_per_episode": sum(len(e.prompt_ids) + len(e.completion_ids) for e in episodes) / n,
        "trained_tokens_per_episode": sum(sum(e.env_mask) for e in episodes) / n,
    }


def train_adapter(
    rows: list[dict[str, list[int]]], model: Any, tokenizer: Any, lora: Any, args: Any, callbacks: list
) -> Any:
    """Fit a LoRA adapter on the rows with TRL's SFTTrainer; return the trainer (its model: the PeftModel)."""
    from datasets import Dataset
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )
    trainer.train()
    return trainer


@dataclass
class WarmstartSetup:
    """What one warm start is decided by (all from params.yaml)."""

    warmstart: WarmstartParams
    train: TrainParams  # the model and LoRA shape GRPO continues; its temperature for the sampled measure
    agent: AgentParams  # the episode the demonstrations imitate
    judge: Judge
    profile: str
    experiment: str

    @property
    def run_name(self) -> str:
        return f"warmstart-{self.profile}-seed{self.warmstart.seed}"


def run_warmstart(
    setup: WarmstartSetup, records: list[dict], dev_records: list[dict], retriever: Any, adapter_dir: Any
) -> dict:
    """Build the demonstrations from `records`, fit the adapter into `adapter_dir`, measure it on
    `dev_records` (greedy, and `warmstart.dev_samples` sampled runs at the training temperature).

    Returns the summary the stage writes (counts, loss, dev behaviour, the ids of the demonstrated
    questions, the MLflow run id) and the loss curve under "log_history". Fewer than `min_episodes` usable
    demonstrations is an error that says why.
    """
    import torch
    from trl import SFTConfig

    from rezero import tracking
    from rezero.agent import run_episodes
    from rezero.errors import PipelineError
    from rezero.models import load_model, load_tokenizer, lora_config
    from rezero.training_callbacks import MlflowStepCallback

    ws, t = setup.warmstart, setup.train
    torch.manual_seed(ws.seed)
    tokenizer = load_tokenizer(t.model)
    env = SearchEnvironment(retriever, setup.agent, seed=ws.seed)
    template = ChatTemplate(tokenizer, setup.agent.worked_example)
    expert = build_expert_set(records, template, env, ws.episodes, ws.retry_share, ws.seed)
    counts = expert.counts
    if counts["episodes"] < ws.min_episodes:
        raise PipelineError(
            f"warm start: only {counts['episodes']} usable expert episodes (need warmstart.min_episodes = "
            f"{ws.min_episodes}): of {counts['questions']} training questions, the answer was not shown in "
            f"the results for {counts['skipped']}. Widen agent.result_chars or agent.top_k, or lower "
            "warmstart.min_episodes."
        )
    tracking.connect(setup.experiment)
    run_id = tracking.start_or_resume_run(
        None,
        setup.run_name,
        {"warmstart": vars(ws), "train.model": t.model, "agent": vars(setup.agent)},
        tracking.run_tags("warmstart", setup.profile),
    )
    args = SFTConfig(
        output_dir="warmstart-trainer",  # replaced by a temporary folder below
        num_train_epochs=ws.epochs,
        # One episode per forward pass, accumulated to batch_size: padding 4 episodes to the longest made a
        # step slower on 2 cores than 4 passes of one.
        per_device_train_batch_size=1,
        gradient_accumulation_steps=ws.batch_size,
        learning_rate=ws.learning_rate,
        lr_scheduler_type=ws.lr_scheduler,
        warmup_steps=ws.warmup_ratio,  # a float in [0, 1) is a ratio of the steps (transformers 5)
        logging_steps=1,
        save_strategy="no",  # one adapter at the end; the stage is cheap to re-run
        report_to="none",  # MLflow is logged by our callback, with this project's metric names
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=t.dtype == "bfloat16",
        max_length=None,  # episodes already fit agent.max_trajectory_tokens
        seed=ws.seed,
        data_seed=ws.seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    lora = lora_config(t)
    callback = MlflowStepCallback(run_id, to_metrics=tracking.warmstart_metrics)
    model = load_model(t.model, t.dtype)
    with tempfile.TemporaryDirectory() as scratch:  # the trainer's own output folder; nothing is kept there
        args.output_dir = scratch
        trainer = train_adapter(sft_rows(expert.episodes), model, tokenizer, lora, args, [callback])
    trainer.model.save_pretrained(str(adapter_dir))
    policy = trainer.model.merge_and_unload().eval()  # merged: generation as fast as the base model
    questions = [r["question"] for r in dev_records]
    measured = {
        "greedy": behaviour(
            run_episodes(policy, tokenizer, env, questions, greedy=True), dev_records, setup.judge
        )
    }
    if ws.dev_samples:
        sampled = run_episodes(policy, tokenizer, env, questions * ws.dev_samples, temperature=t.temperature)
        measured["sampled"] = behaviour(sampled, dev_records, setup.judge)
    tracking.log_metrics(
        run_id,
        {f"warmstart/dev/{how}/{k}": v for how, values in measured.items() for k, v in values.items()},
        step=0,
    )
    tracking.end_run()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    log.info(
        "warm start: %d episodes (%d retries), %d steps, loss %.3f -> %.3f; dev: answered %.2f greedy, "
        "second search %.3f sampled",
        counts["episodes"],
        counts["retry_episodes"],
        trainer.state.global_step,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        measured["greedy"]["answered_share"],
        measured.get("sampled", {}).get("second_search_share", float("nan")),
    )
    return {
        **counts,
        **mean_tokens(expert.episodes),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "dev": measured,
        "demonstrated_ids": [r["id"] for r in expert.records],
        "mlflow_run_id": run_id,
        "log_history": [e for e in trainer.state.log_history if "loss" in e],
    }
