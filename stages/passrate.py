"""Stage `passrate`: sample the policy GRPO starts from (the warm start) a few times on a seeded subset of the
training questions, at the training temperature, with the training agent loop and judge, and record how many
runs each question got right. `train` draws its questions from those answered right sometimes but not always,
so that correctness varies inside GRPO's groups. Questions the warm start demonstrated are left out. Every
variant and seed of GRPO shares this stage's output (DVC reuses it).

A training split too small for the warm start's demonstrations plus `passrate.min_questions` is refused first.

Params: passrate.*, train.model/dtype/temperature, agent.*, the judge's rewards.* keys, warmstart.enabled and
episodes (profiles.<profile> overrides them).
"""

import argparse
import logging
import random
import time
from pathlib import Path

from rezero.config import load_section
from rezero.io import read_jsonl, write_json, write_jsonl
from rezero.runtime import run_stage, seed_everything

log = logging.getLogger("rezero.stages.passrate")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_qa", type=Path, help="training QA JSONL from `synthesize`")
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("warmstart", type=Path, help="warm-start adapter folder from `warmstart`")
    parser.add_argument("rates_out", type=Path, help="per-question runs right / runs, JSONL (written)")
    parser.add_argument("metrics_out", type=Path, help="summary JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.checkpoints import demonstrated_questions, warmstart_adapter
    from rezero.judges import make_judge
    from rezero.passrate import candidate_questions, check_question_budget, sample_pass_rates, summarise

    names = ("passrate", "train", "agent", "rewards", "warmstart")
    p, train, agent, rewards, warmstart = (load_section(n, args.params) for n in names)
    judge = make_judge(rewards)  # an LLM judge without its endpoint fails here, before the model loads
    adapter, _ = warmstart_adapter(args.warmstart, warmstart.enabled)
    records = read_jsonl(args.train_qa)
    check_question_budget(len(records), warmstart.episodes if warmstart.enabled else 0, p.min_questions)
    candidates = candidate_questions(records, demonstrated_questions(args.warmstart))
    rates: list[dict] = []
    summary: dict = {"enabled": p.enabled, "candidates": len(candidates)}
    if p.enabled:
        from rezero.agent import SearchEnvironment
        from rezero.models import apply_adapter, load_model, load_tokenizer
        from rezero.retrieval import open_retriever

        subset = random.Random(p.seed).sample(
            candidates, min(p.questions or len(candidates), len(candidates))
        )
        model = load_model(train.model, train.dtype)
        if adapter is not None:
            model = apply_adapter(model, adapter).merge_and_unload()
        seed_everything(p.seed)  # torch is loaded now
        env = SearchEnvironment(open_retriever(args.index), agent, seed=p.seed)
        started = time.perf_counter()
        rates = sample_pass_rates(
            model.eval(),
            load_tokenizer(train.model),
            env,
            subset,
            judge,
            samples=p.samples,
            temperature=train.temperature,
            batch_questions=p.batch_questions,
        )
        summary.update(summarise(rates), seconds=round(time.perf_counter() - started, 1))
        log.info(
            "%d of %d sampled questions right sometimes but not always (mean pass rate %.3f) in %.0f s",
            summary["informative"],
            len(rates),
            summary["mean_pass_rate"],
            summary["seconds"],
        )
    write_jsonl(args.rates_out, rates)
    write_json(args.metrics_out, summary)


if __name__ == "__main__":
    run_stage("passrate", main)
