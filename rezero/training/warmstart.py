"""The supervised warm start: teach the search protocol from expert episodes, then let GRPO take over.

Models below ~0.5B do not pick up tool use from RL alone; R1-Searcher and DeepSeek-R1 first teach the format
(a cold start). The expert episodes (rezero/episode/demonstrations.py) search with the question's words and
answer from the real results; a share of them (`warmstart.retry_share`) retry first, with a second search
whose results show the answer when the first ones miss it. A warm start that never searched twice gave the
retry reward nothing to reinforce. ReZero and its baseline continue the same adapter, so the comparison still
isolates the retry reward.

The episodes are trained with TRL's `SFTTrainer` on their pre-tokenised ids with `assistant_masks` = the
rollout's `env_mask`: the loss covers the model's turns and never the injected results. The stage then
measures the adapter on the dev split: greedy (answered share, accuracy) and sampled at the training
temperature (how often it searches again).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rezero.core.config import AgentParams, TrainParams, WarmstartParams
from rezero.episode.agent import ChatTemplate, SearchEnvironment, Trajectory
from rezero.episode.demonstrations import ExpertSet, build_expert_set
from rezero.episode.judges import Judge

log = logging.getLogger(__name__)
RUN_MARKER = ".mlflow_run_id"  # in the unfinished adapter folder while the warm start's run is open


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

    from rezero.core.errors import PipelineError
    from rezero.external import tracking
    from rezero.external.models import load_tokenizer

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
    marker = Path(adapter_dir) / RUN_MARKER  # a kill -9 leaves it in the orphaned folder: close_killed_runs
    marker.write_text(run_id)
    with tracking.closing_run_on_failure():  # FAILED on an error, KILLED on a signal
        summary = fit_and_measure(setup, expert, dev_records, env, tokenizer, run_id, adapter_dir)
    marker.unlink()
    tracking.end_run()
    return summary


def close_killed_runs(adapter_out: str | Path) -> None:
    """Mark KILLED the MLflow runs of warm starts killed before they could close them (`kill -9`): their
    unfinished folders, left beside `adapter_out`, name them. Needs `tracking.connect` first."""
    from rezero.core.io import orphaned_temporaries
    from rezero.external import tracking

    for orphan in orphaned_temporaries(adapter_out):
        marker = orphan / RUN_MARKER
        if marker.is_file():
            tracking.close_abandoned_run(marker.read_text().strip())


def fit_and_measure(
    setup: WarmstartSetup,
    expert: ExpertSet,
    dev_records: list[dict],
    env: SearchEnvironment,
    tokenizer: Any,
    run_id: str,
    adapter_dir: Any,
) -> dict:
    """SFT on the expert episodes into `adapter_dir`, then the adapter measured on dev: the summary."""
    from rezero.external import tracking
    from rezero.external.models import load_model, lora_config
    from rezero.training.callbacks import MlflowStepCallback

    ws, t, counts = setup.warmstart, setup.train, expert.counts
    args = sft_config(ws, t)
    lora = lora_config(t)
    callback = MlflowStepCallback(run_id, to_metrics=tracking.warmstart_metrics)
    model = load_model(t.model, t.dtype)
    with tempfile.TemporaryDirectory() as scratch:  # the trainer's own output folder; nothing is kept there
        args.output_dir = scratch
        trainer = train_adapter(sft_rows(expert.episodes), model, tokenizer, lora, args, [callback])
    trainer.model.save_pretrained(str(adapter_dir))
    policy = trainer.model.merge_and_unload().eval()  # merged: generation as fast as the base model
    measured = measure_on_dev(policy, tokenizer, env, dev_records, setup)
    tracking.log_metrics(
        run_id,
        {f"warmstart/dev/{how}/{k}": v for how, values in measured.items() for k, v in values.items()},
        step=0,
    )
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


def sft_config(ws: WarmstartParams, t: TrainParams) -> Any:
    """TRL's `SFTConfig` for the warm start; its output folder is replaced by a temporary one."""
    import torch
    from trl import SFTConfig

    return SFTConfig(
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


def measure_on_dev(
    policy: Any, tokenizer: Any, env: SearchEnvironment, dev_records: list[dict], setup: WarmstartSetup
) -> dict[str, dict[str, float]]:
    """The adapter's behaviour on dev: greedy, and sampled at the training temperature `dev_samples` times."""
    from rezero.episode.agent import run_episodes

    questions = [r["question"] for r in dev_records]
    greedy = run_episodes(policy, tokenizer, env, questions, greedy=True)
    measured = {"greedy": behaviour(greedy, dev_records, setup.judge)}
    if setup.warmstart.dev_samples:
        repeated = questions * setup.warmstart.dev_samples
        sampled = run_episodes(policy, tokenizer, env, repeated, temperature=setup.train.temperature)
        measured["sampled"] = behaviour(sampled, dev_records, setup.judge)
    return measured
