"""The supervised warm start: teach the search protocol from expert episodes, then let GRPO take over.

Models below ~0.5B do not pick up tool use from RL alone; R1-Searcher and DeepSeek-R1 first teach the format
(a cold start). Here an expert episode is what the environment itself would play for a perfect searcher:
the question, one `<search>` whose query is the question's words, the real results the index returns for it
(the same window and formatting as in training), and an `<answer>` with the gold answer, kept only when that
answer is visible in the results. There are no retries in the demonstrations, so any retrying after GRPO
comes from the retry reward, and ReZero and its baseline start from the same adapter.

Each episode is built by the agent's own functions (`take_turn`, `close_episode`), so its token ids are
exactly those the rollout would produce, and trained with TRL's `SFTTrainer` on the pre-tokenised ids with
`assistant_masks` = the rollout's `env_mask`: the loss covers the model's two turns (the search and the
answer) and never the injected results. A naive version (one templated think, one epoch, lr 2e-4) learned the
search turn but then repeated it instead of answering; so the think texts vary but each kind of turn has its
own opening word, there are several epochs at a higher learning rate, and the stage measures the share of
held-out questions answered after seeing results.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from rezero.agent import ChatTemplate, SearchEnvironment, Trajectory, close_episode, take_turn
from rezero.judges import Judge
from rezero.visibility import first_result_showing

log = logging.getLogger(__name__)

# Think texts drawn at random, so the loss is spent on the protocol rather than on one memorised sentence.
# Every search think starts with "I" and every answer think with "Based on result": the turn's kind is
# decided by its first word, which greedy decoding then picks cleanly. (With openings shared between the
# kinds, the warm-started model repeated its search turn after the results instead of answering.)
SEARCH_THINKS = (
    "I need to search the document.",
    "I will search the report for this.",
    "I should look this up in the document.",
    "I do not know this yet, so I will search.",
    "I will search the mission report.",
)
# Each names the result that shows the answer and analyses it (rewards.py, search_strategy).
ANSWER_THINKS = (
    "Based on result {n}, I found the answer.",
    "Based on result {n}, the answer is clear.",
    "Based on result {n}, this answers the question.",
    "Based on result {n}, the information shows it.",
    "Based on result {n}, I can answer now.",
)
# Question words that carry no search meaning; the rest of the question is the query.
QUESTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "what which who whom whose when where why how was were is are did do does the a an of in on at to "
        "for by with and or during after before",
    )
)


@dataclass
class ExpertSet:
    """The expert episodes, the records they answer, the held-out questions and how many were skipped."""

    episodes: list[Trajectory]
    records: list[dict]
    held_out: list[dict]
    counts: dict[str, int] = field(default_factory=dict)


def derive_query(question: str) -> str:
    """The question's content words, in order: what a searcher would type.

    >>> derive_query("How many hours did the crew sleep on the second day?")
    'many hours crew sleep second day'
    """
    words = re.findall(r"[\w'./:-]+", question)
    kept = [w.strip(".:") for w in words if w.lower() not in QUESTION_WORDS]
    return " ".join(w for w in kept if w) or question.strip()


def expert_episode(
    record: dict, template: ChatTemplate, env: SearchEnvironment, rng: random.Random
) -> Trajectory | None:
    """One demonstration: a search, the real results, the gold answer. None when the answer is not shown."""
    tokenize = template.tokenizer
    question, query = record["question"], derive_query(record["question"])
    episode = Trajectory(question=question, prompt_ids=template.prompt_ids(question))
    search_turn = f"<think>{rng.choice(SEARCH_THINKS)}</think>\n<search>{query}</search>"
    take_turn(episode, tokenize(search_turn, add_special_tokens=False)["input_ids"], template, env)
    if episode.done or not episode.retrieved:  # the results did not fit the token budget
        return None
    shown = first_result_showing(record["answer"], [hit["shown"] for hit in episode.retrieved[-1]])
    if shown is None:
        return None
    think = rng.choice(ANSWER_THINKS).format(n=shown)
    answer_turn = f"<think>{think}</think>\n<answer>{record['answer']}</answer>"
    take_turn(episode, tokenize(answer_turn, add_special_tokens=False)["input_ids"], template, env)
    close_episode(episode, template)
    return episode


def build_expert_set(
    records: list[dict],
    template: ChatTemplate,
    env: SearchEnvironment,
    episodes: int,
    held_out: int,
    seed: int,
) -> ExpertSet:
    """Hold out `held_out` training questions, then build up to `episodes` demonstrations from the rest."""
    rng = random.Random(seed)
    order = list(records)
    rng.shuffle(order)
    kept, skipped = [], 0
    expert = ExpertSet(episodes=[], records=[], held_out=order[:held_out])
    for record in order[held_out:]:
        if len(expert.episodes) >= episodes:
            break
        episode = expert_episode(record, template, env, rng)
        if episode is None:
            skipped += 1
            continue
        expert.episodes.append(episode)
        kept.append(record)
    expert.records = kept
    expert.counts = {
        "questions": len(records),
        "held_out": len(expert.held_out),
        "skipped_answer_not_shown": skipped,
        "episodes": len(expert.episodes),
    }
    return expert


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
    """How the warm-started model plays held-out questions: answers after results, searches, accuracy."""
    n = max(len(trajectories), 1)
    correct = sum(
        t.answer is not None and judge(r["question"], t.answer, r["answer"])
        for t, r in zip(trajectories, records, strict=True)
    )
    return {
        "answered_after_results": sum(t.answer is not None and bool(t.queries) for t in trajectories) / n,
        "answered_share": sum(t.answer is not None for t in trajectories) / n,
        "searches_per_question": sum(len(t.queries) for t in trajectories) / n,
        "accuracy": correct / n,
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

    warmstart: Any  # WarmstartParams
    train: Any  # TrainParams: the model and the LoRA shape GRPO continues
    agent: Any  # AgentParams: the episode the demonstrations imitate
    judge: Judge
    profile: str
    experiment: str

    @property
    def run_name(self) -> str:
        return f"warmstart-{self.profile}-seed{self.warmstart.seed}"


def run_warmstart(setup: WarmstartSetup, records: list[dict], retriever: Any, adapter_dir: Any) -> dict:
    """Build the demonstrations, fit the adapter into `adapter_dir`, measure the held-out behaviour.

    Returns the summary the stage writes (counts, loss, held-out behaviour, the MLflow run id) and the loss
    curve under "log_history". Fewer than `min_episodes` usable demonstrations is an error that says why.
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
    expert = build_expert_set(records, template, env, ws.episodes, ws.held_out, ws.seed)
    counts = expert.counts
    if counts["episodes"] < ws.min_episodes:
        raise PipelineError(
            f"warm start: only {counts['episodes']} usable expert episodes (need warmstart.min_episodes = "
            f"{ws.min_episodes}): of {counts['questions']} training questions, {counts['held_out']} are held "
            f"out and the answer was not shown in the results for {counts['skipped_answer_not_shown']}. "
            "Widen agent.result_chars or agent.top_k, or lower warmstart.min_episodes."
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
        # One episode per forward pass, accumulated to batch_size: padding 4 episodes of 300-670 tokens to
        # the longest made a step 1.4x slower on 2 cores (60 s vs 44 s for 16 episodes).
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
    held_out = run_episodes(policy, tokenizer, env, [r["question"] for r in expert.held_out], greedy=True)
    measured = behaviour(held_out, expert.held_out, setup.judge)
    tracking.log_metrics(run_id, {f"warmstart/held_out/{k}": v for k, v in measured.items()}, step=0)
    tracking.end_run()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    log.info(
        "warm start: %d episodes, %d steps, loss %.3f -> %.3f; held-out: answered after results %.2f",
        counts["episodes"],
        trainer.state.global_step,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        measured["answered_after_results"],
    )
    return {
        **counts,
        **mean_tokens(expert.episodes),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "held_out": measured,
        "mlflow_run_id": run_id,
        "log_history": [e for e in trainer.state.log_history if "loss" in e],
    }
