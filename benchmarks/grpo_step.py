"""Where a GRPO step of the default profile spends its time, against this machine's matmul rate.

Builds the training's own trainer (`rezero.training.grpo.build_trainer`: the warm-start adapter when
`models/warmstart` holds one, the multi-turn rollout, the real index and rewards) and times each phase of
`--steps` steps by wrapping the functions TRL and the agent call:

  generation      model.generate inside the agent loop (prefill of injected results + sampling)
  retrieval       the index's searches
  rollout other   the rest of the rollout (tokenising, decoding, parsing turns)
  rewards         the six reward functions
  reference       log-probs of the reference (no gradient)
  policy forward  log-probs of the policy (with gradient)
  backward        loss.backward()
  optimizer       AdamW
  other           the rest of the step (padding, advantages, clipping, TRL's bookkeeping)

Each phase that does arithmetic also gets its achieved GFLOP/s (model FLOPs of the tokens it processed,
padding included, since that is the work done) as a share of the fp32 matmul rate measured in the same run.
The first step (one-off set-up) is left out of the means when there are more. Memory: the peak resident
set (VmHWM) before the first step (loading the model, its copy, the libraries) and how far each phase raised
it over the whole run, so the phase that sets the peak is named. Prints a table; `--json PATH` writes it too.

    python benchmarks/grpo_step.py [--steps 3] [-S train.questions_per_step=2 ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rezero.core.runtime import configure_environment, matmul_gflops, setup_logging

PHASES = (
    "generation",
    "retrieval",
    "rollout other",
    "rewards",
    "reference",
    "policy forward",
    "backward",
    "optimizer",
    "other",
)


def peak_rss_gib() -> float:
    """The process's peak resident set so far (VmHWM), in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class FlopModel:
    """Forward FLOPs per token of a Llama-shaped model: every linear layer (2 × its weights), LoRA's extra
    matmuls, causal attention over `context` positions, and the LM head where logits are computed."""

    def __init__(self, config: Any, lora_r: int, lora_modules: list[str]) -> None:
        d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
        kv = config.num_key_value_heads * (d // config.num_attention_heads)
        shapes = {
            "q_proj": (d, d),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "o_proj": (d, d),
            "gate_proj": (d, ff),
            "up_proj": (d, ff),
            "down_proj": (ff, d),
        }
        self.layers, self.hidden = layers, d
        self.linear = 2 * layers * sum(i * o for i, o in shapes.values())
        self.lora = 2 * layers * sum(lora_r * (i + o) for m, (i, o) in shapes.items() if m in lora_modules)
        self.head = 2 * d * config.vocab_size

    def forward(self, tokens: int, context: int, with_head: bool = True, with_lora: bool = True) -> float:
        attention = 2 * 2 * self.layers * self.hidden * context / 2  # QK and AV, causal: half the context
        extra = (self.head if with_head else 0) + (self.lora if with_lora else 0)
        return tokens * (self.linear + attention + extra)


def without_nesting(by_phase: dict[str, float]) -> None:
    """The rollout's wrapper also counts the generation and retrieval calls it makes: keep only the rest of
    it, as "rollout other" (seconds or peak rises alike)."""
    rollout = by_phase.pop("rollout", 0.0)
    by_phase["rollout other"] = rollout - by_phase.get("generation", 0) - by_phase.get("retrieval", 0)


class PhaseTimer:
    """Seconds and FLOPs per phase of the current step; `close_step` files them and starts the next."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops: dict[str, float] = defaultdict(float)
        self.positions = 0  # padded positions the loss pass computed this step
        self.steps: list[dict[str, float]] = []
        self.peak_rise: dict[str, float] = defaultdict(float)  # GiB each phase raised the peak, whole run

    def wrap(
        self, owner: Any, name: str, phase: Callable[[], str] | str, flops: Callable | None = None
    ) -> None:
        """Replace `owner.name` by a timed call. `phase` may pick the phase at call time; `flops(args,
        result)` counts the call's arithmetic."""
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = phase() if callable(phase) else phase
            peak, started = peak_rss_gib(), time.perf_counter()
            result = original(*args, **kwargs)
            self.seconds[label] += time.perf_counter() - started
            self.peak_rise[label] += peak_rss_gib() - peak
            if flops:
                self.flops[label] += flops(args, result)
            return result

        setattr(owner, name, timed)

    def close_step(self, total: float) -> None:
        step = dict(self.seconds)
        without_nesting(step)
        step["other"] = total - sum(v for k, v in step.items() if k in PHASES)
        step["step"] = total
        step["positions"] = self.positions
        step.update({f"flops/{k}": v for k, v in self.flops.items()})
        self.steps.append(step)
        self.seconds.clear()
        self.flops.clear()
        self.positions = 0


def instrument(trainer: Any, retriever: Any, timer: PhaseTimer, flop_model: FlopModel, merged: bool) -> None:
    """Time the phases of every step of `trainer` (see the module docstring); `merged`: rollouts sample
    from a LoRA-merged copy (no LoRA FLOPs in generation)."""
    import torch
    from transformers import TrainerCallback

    from rezero.episode import agent

    # The agent's batch grows by each turn's padded prefill and its sampled ids; only the sampled positions
    # go through the LM head (generate keeps the last position's logits during prefill).
    widths: dict[int, int] = {}

    def generation_flops(args: tuple, turns: list[list[int]]) -> float:
        batch = args[3]
        rows, after = len(batch.rows), len(batch.rows[0].ids)
        new = after - widths.get(id(batch), 0)
        widths[id(batch)] = after
        sampled = min(new, max((len(t) for t in turns), default=0))
        prefill = flop_model.forward(rows * (new - sampled), after, with_head=False, with_lora=not merged)
        return prefill + flop_model.forward(rows * sampled, after, with_lora=not merged)

    def logp_phase() -> str:
        return "policy forward" if torch.is_grad_enabled() else "reference"

    def logp_flops(args: tuple, result: Any) -> float:
        input_ids = args[1]
        if torch.is_grad_enabled():
            timer.positions += input_ids.numel()
        # Off Triton devices TRL's fused LM head (add_fused_lm_head) scores every position.
        return flop_model.forward(input_ids.numel(), input_ids.shape[1])

    timer.wrap(agent, "generate_turns", "generation", generation_flops)
    timer.wrap(retriever, "search", "retrieval")
    timer.wrap(trainer, "rollout_func", "rollout")
    timer.wrap(trainer, "_calculate_rewards", "rewards")
    timer.wrap(trainer, "_get_per_token_logps_and_entropies", logp_phase, logp_flops)
    timer.wrap(trainer.accelerator, "backward", "backward")

    class Steps(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_pre_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            self.optimizer_started = time.perf_counter()

        def on_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            timer.seconds["optimizer"] += time.perf_counter() - self.optimizer_started

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            # Frozen base weights need no weight gradients: backward is about one forward (input gradients).
            timer.flops["backward"] = timer.flops["policy forward"]
            timer.close_step(time.perf_counter() - self.started)

    trainer.add_callback(Steps())


def peak_rises(timer: PhaseTimer, before_training: float) -> dict[str, float]:
    """GiB by which each phase raised the peak resident set over the run; what no wrapped call raised
    (optimizer, TRL's bookkeeping) is "other"."""
    rise = dict(timer.peak_rise)
    without_nesting(rise)
    rise["other"] = peak_rss_gib() - before_training - sum(v for k, v in rise.items() if k in PHASES)
    return {phase: round(rise.get(phase, 0.0), 2) for phase in PHASES}


def summarise(timer: PhaseTimer, episodes: int, matmul: float, before_training: float) -> dict[str, Any]:
    steps = timer.steps
    timed = steps[1:] or steps
    mean = {k: sum(s.get(k, 0.0) for s in timed) / len(timed) for k in {k for s in timed for k in s}}
    rows = []
    for phase in PHASES:
        seconds, flops = mean.get(phase, 0.0), mean.get(f"flops/{phase}", 0.0)
        rate = flops / seconds / 1e9 if seconds > 0 and flops else None
        rows.append(
            {
                "phase": phase,
                "seconds": round(seconds, 3),
                "share": round(seconds / mean["step"], 4),
                "gflops_per_s": round(rate, 1) if rate else None,
                "of_matmul": round(rate / matmul, 3) if rate else None,
            }
        )
    arithmetic = [r for r in rows if r["phase"] in ("reference", "policy forward", "backward")]
    loss_seconds = sum(r["seconds"] for r in arithmetic)
    loss_flops = sum(mean.get(f"flops/{r['phase']}", 0.0) for r in arithmetic)
    return {
        "matmul_gflops_per_s": round(matmul, 1),
        "episodes_per_step": episodes,
        "step_s": round(mean["step"], 2),
        "episodes_per_min": round(60 * episodes / mean["step"], 2),
        "loss_pass_positions": int(mean.get("positions", 0)),  # padded: what the loss pass computes
        "loss_side_of_matmul": round(loss_flops / loss_seconds / 1e9 / matmul, 3) if loss_seconds else None,
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "peak_rss_before_training_gib": round(before_training, 2),
        "steps_timed": len(timed),
        "phases": rows,
        "peak_rise_gib": peak_rises(timer, before_training),
    }


def print_table(summary: dict[str, Any]) -> None:
    print(f"{'phase':16s}{'s/step':>9s}{'share':>8s}{'GFLOP/s':>10s}{'of matmul':>11s}")
    for r in summary["phases"]:
        rate = f"{r['gflops_per_s']:10.1f}" if r["gflops_per_s"] else f"{'-':>10s}"
        share = f"{r['of_matmul']:11.1%}" if r["of_matmul"] else f"{'-':>11s}"
        print(f"{r['phase']:16s}{r['seconds']:9.2f}{r['share']:8.1%}{rate}{share}")
    print(
        f"step {summary['step_s']:.2f} s for {summary['episodes_per_step']} episodes "
        f"({summary['episodes_per_min']:.1f} episodes/min, {summary['loss_pass_positions']} padded positions "
        "in the loss pass); reference + policy + backward at "
        f"{summary['loss_side_of_matmul']:.1%} of the matmul rate "
        f"({summary['matmul_gflops_per_s']:.0f} GFLOP/s); "
        f"peak RSS {summary['peak_rss_gib']:.2f} GiB"
    )
    rises = ", ".join(f"{k} +{v:.2f}" for k, v in summary["peak_rise_gib"].items() if v >= 0.01)
    before = summary["peak_rss_before_training_gib"]
    print(f"peak RSS: {before:.2f} GiB before the first step, raised by {rises}")


def overridden_sections(overrides: list[str], names: tuple[str, ...]) -> dict[str, Any]:
    """params.yaml's sections `names`, with `section.key=YAML value` overrides (like `dvc exp run -S`)."""
    import yaml

    from rezero.core.config import SECTIONS, build, deep_merge, profile_section, read_params_file

    data = read_params_file()
    for override in overrides:
        key, value = override.split("=", 1)
        nested: Any = yaml.safe_load(value)
        for part in reversed(key.split(".")):  # rewards.weights.retry=0 → {"rewards": {"weights": {...}}}
            nested = {part: nested}
        data = deep_merge(data, nested)
    return {n: build(SECTIONS[n], profile_section(data, n), f"params: {n}") for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps to time (the first is left out)")
    parser.add_argument(
        "--warmstart", type=Path, default=Path("models/warmstart"), help="adapter to continue"
    )
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument(
        "-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a param"
    )
    args = parser.parse_args()

    import torch

    from rezero.core.io import read_jsonl
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import TrainingSetup, build_trainer

    params = overridden_sections(args.set, ("train", "agent", "rewards"))
    setup = TrainingSetup(**params, profile="cpu", data_fingerprint="benchmark")
    setup.train.max_steps, setup.train.save_steps = args.steps, 10**6
    warmstart = args.warmstart if (args.warmstart / "adapter_config.json").is_file() else None
    retriever = open_retriever("data/index")
    trainer = build_trainer(
        setup, read_jsonl("data/qa/train.jsonl"), retriever, Path(tempfile.mkdtemp()), warmstart
    )
    timer = PhaseTimer()
    instrument(
        trainer,
        retriever,
        timer,
        FlopModel(trainer.model.config, setup.train.lora_r, setup.train.lora_target_modules),
        merged=setup.train.merged_rollouts,
    )
    matmul = matmul_gflops()
    before_training = peak_rss_gib()
    trainer.train()
    episodes = setup.train.episodes_per_step
    summary = summarise(timer, episodes, matmul, before_training)
    summary.update(
        {
            "warmstart": str(warmstart) if warmstart else None,
            "threads": torch.get_num_threads(),
            "overrides": args.set,
        }
    )
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    configure_environment()
    setup_logging("WARNING")
    main()
