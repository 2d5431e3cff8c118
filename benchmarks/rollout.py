"""Rollout benchmark for the default (cpu) profile: multi-turn search rollouts against plain single-turn
generation on the same model and batch, measured in the same run.

For each variant, in its own process (so peak memory is its own):
  - generation: model tokens per second and trajectories per second over `--batches` batches of
    `questions_per_step × num_generations` episodes;
  - training: mean GRPO step time over `--steps` steps of TRL's GRPOTrainer (LoRA, β from params), and the
    process's peak resident memory.
The baseline is TRL's own single-turn generation (`GRPOTrainer` without `rollout_func`, completions capped at
one turn's token budget). Ratios are multi-turn / single-turn.

    python benchmarks/rollout.py [--batches 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rezero.core.runtime import configure_environment, setup_logging


def questions(count: int) -> list[str]:
    from rezero.core.io import read_jsonl

    return [r["question"] for r in read_jsonl("data/qa/train.jsonl")[:count]]


def measure_generation(variant: str, batches: int, params: dict) -> dict[str, float]:
    import torch

    from rezero.episode.agent import ChatTemplate, SearchEnvironment, run_episodes
    from rezero.external.models import load_model, load_tokenizer
    from rezero.retrieval import open_retriever

    train, agent = params["train"], params["agent"]
    model, tokenizer = load_model(train.model).eval(), load_tokenizer(train.model)
    batch = train.questions_per_step * train.num_generations
    prompts = [q for q in questions(batches) for _ in range(train.num_generations)][: batches * batch]
    env = SearchEnvironment(open_retriever("data/index"), agent, seed=0)
    template = ChatTemplate(tokenizer)
    torch.manual_seed(0)
    tokens, started = 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        if variant == "multi":
            tokens += sum(
                sum(t.env_mask)
                for t in run_episodes(model, tokenizer, env, chunk, temperature=train.temperature)
            )
        else:
            ids = [template.prompt_ids(q) for q in chunk]
            width = max(map(len, ids))
            pad = tokenizer.pad_token_id
            out = model.generate(
                input_ids=torch.tensor([[pad] * (width - len(r)) + r for r in ids]),
                attention_mask=torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids]),
                max_new_tokens=agent.max_turn_tokens,
                do_sample=True,
                temperature=train.temperature,
                top_k=0,
                top_p=1.0,
                pad_token_id=pad,
                eos_token_id=template.end_of_turn_ids,
            )
            new = out[:, width:]
            tokens += int((new != pad).sum())
    elapsed = time.perf_counter() - started
    return {"model_tokens_per_s": tokens / elapsed, "trajectories_per_s": len(prompts) / elapsed}


def measure_training(variant: str, steps: int, params: dict) -> dict[str, float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from rezero.episode.agent import SearchEnvironment, prompt_messages
    from rezero.episode.rewards import reward_funcs_for
    from rezero.external.models import load_model, load_tokenizer, lora_config
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import RolloutStats, TrainingSetup, grpo_config, make_rollout_func

    setup = TrainingSetup(
        train=params["train"],
        agent=params["agent"],
        rewards=params["rewards"],
        profile="cpu",
        data_fingerprint="benchmark",
    )
    setup.train.max_steps, setup.train.save_steps = steps, 10**6
    step_times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            step_times.append(time.perf_counter() - self.t0)

    config = grpo_config(setup, Path(tempfile.mkdtemp()))
    if variant == "single":
        config.max_completion_length = setup.agent.max_turn_tokens
    funcs = reward_funcs_for(setup.rewards)
    env = SearchEnvironment(open_retriever("data/index"), setup.agent, seed=0)
    trainer = GRPOTrainer(
        model=load_model(setup.train.model),
        reward_funcs=funcs,
        args=config,
        # TRL's single-turn path applies the chat template itself: give it the same messages the agent uses.
        train_dataset=Dataset.from_list(
            [{"prompt": q if variant == "multi" else prompt_messages(q)} for q in questions(64)]
        ),
        processing_class=load_tokenizer(setup.train.model),
        peft_config=lora_config(setup.train),
        rollout_func=make_rollout_func(env, RolloutStats()) if variant == "multi" else None,
        callbacks=[StepTimer()],
    )
    trainer.train()
    # The first step includes one-off set-up; report the mean of the others when there are any.
    timed = step_times[1:] or step_times
    return {"grpo_step_s": sum(timed) / len(timed)}


def run_variant(variant: str, batches: int, steps: int) -> dict[str, float]:
    from rezero.core.config import load_config

    config = load_config()
    params = {"train": config.train, "agent": config.agent, "rewards": config.rewards}
    result = {**measure_generation(variant, batches, params), **measure_training(variant, steps, params)}
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=3, help="generation batches per variant")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per variant")
    parser.add_argument("--variant", choices=["multi", "single"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.batches, args.steps)))
        return
    results = {}
    for variant in ("single", "multi"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--batches",
                str(args.batches),
                "--steps",
                str(args.steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    base, multi = results["single"], results["multi"]
    print(f"{'':28s}{'single-turn (baseline)':>24s}{'multi-turn search':>20s}{'ratio':>8s}")
    for key, unit in [
        ("model_tokens_per_s", "tok/s"),
        ("trajectories_per_s", "traj/s"),
        ("grpo_step_s", "s/step"),
        ("peak_rss_gib", "GiB"),
    ]:
        print(
            f"{key + ' (' + unit + ')':28s}{base[key]:24.2f}{multi[key]:20.2f}{multi[key] / base[key]:8.2f}x"
        )


if __name__ == "__main__":
    configure_environment()
    setup_logging("WARNING")
    main()
