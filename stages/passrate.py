"""Stage `passrate`: score each training question by how likely the policy GRPO starts from (the warm start)
is to answer it right: the log-probability it gives the gold answer after the expert's own episode (the
question's words searched, or a retry when those results miss it; rezero/training/passrate.py). `train` draws
its questions from those likely right sometimes but not always, so that correctness varies inside GRPO's
groups. Questions the warm start demonstrated are left out. Every variant and seed of GRPO shares this stage's
output (DVC reuses it). A training split too small for the warm start's demonstrations plus
`passrate.min_questions` is refused first.

Params: passrate.*, train.model/dtype, agent.*, warmstart.enabled/episodes (profiles.<profile> overrides
them).
"""

import argparse
import logging
import random
import time
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_jsonl, write_json, write_jsonl
from rezero.core.runtime import run_stage

log = logging.getLogger("rezero.stages.passrate")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_qa", type=Path, help="training QA JSONL from `synthesize`")
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("warmstart", type=Path, help="warm-start adapter folder from `warmstart`")
    parser.add_argument("scores_out", type=Path, help="per-question answer log-probability, JSONL (written)")
    parser.add_argument("metrics_out", type=Path, help="summary JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.training.checkpoints import demonstrated_questions, warmstart_adapter
    from rezero.training.passrate import (
        candidate_questions,
        check_question_budget,
        is_informative,
        score_questions,
    )

    config = load_config(args.params)
    p, train, agent, warmstart = config.passrate, config.train, config.agent, config.warmstart
    adapter, _ = warmstart_adapter(args.warmstart, warmstart.enabled)
    records = read_jsonl(args.train_qa)
    check_question_budget(len(records), warmstart.episodes if warmstart.enabled else 0, p.min_questions)
    candidates = candidate_questions(records, demonstrated_questions(args.warmstart))
    scores: list[dict] = []
    summary: dict = {"enabled": p.enabled, "candidates": len(candidates)}
    if p.enabled:
        from rezero.episode.agent import SearchEnvironment
        from rezero.external.models import apply_adapter, load_model, load_tokenizer
        from rezero.retrieval import open_retriever

        subset = random.Random(p.seed).sample(
            candidates, min(p.questions or len(candidates), len(candidates))
        )
        model = load_model(train.model, train.dtype)
        if adapter is not None:
            model = apply_adapter(model, adapter).merge_and_unload()
        env = SearchEnvironment(open_retriever(args.index), agent, seed=p.seed)
        started = time.perf_counter()
        scores = score_questions(model.eval(), load_tokenizer(train.model), env, subset, p.seed)
        informative = sum(is_informative(row, p.min_logprob, p.max_logprob) for row in scores)
        summary |= {
            "scored": len(scores),
            "no_expert_episode": sum(row["answer_logprob"] is None for row in scores),
            "informative": informative,
            "seconds": round(time.perf_counter() - started, 1),
        }
        log.info(
            "%d of %d training questions likely answered right sometimes but not always, scored in %.0f s",
            informative,
            len(scores),
            summary["seconds"],
        )
    write_jsonl(args.scores_out, scores)
    write_json(args.metrics_out, summary)


if __name__ == "__main__":
    run_stage("passrate", main)
