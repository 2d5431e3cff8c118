"""Stage `visibility`: answer visibility, the share of each QA split whose gold answer appears in the results
the agent is shown when the question itself is the query. No policy does better from a single search, so it
is the ceiling to read accuracy against; it moves with what the agent is shown (top_k, result windows).

Params: agent.top_k / result_chars / noise_share (what the agent is shown), synthesize.seed (the noise draw).
"""

import argparse
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_jsonl, write_json
from rezero.core.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("train_qa", type=Path, help="training QA JSONL from `synthesize`")
    parser.add_argument("dev_qa", type=Path, help="dev QA JSONL from `synthesize`")
    parser.add_argument("test_qa", type=Path, help="test QA JSONL from `synthesize`")
    parser.add_argument("metrics_out", type=Path, help="answer visibility per split, JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.episode.agent import SearchEnvironment
    from rezero.episode.visibility import answer_visibility
    from rezero.retrieval import open_retriever

    splits = {"train": args.train_qa, "dev": args.dev_qa, "test": args.test_qa}
    records = {name: read_jsonl(path) for name, path in splits.items()}
    config = load_config(args.params)
    env = SearchEnvironment(open_retriever(args.index), config.agent, seed=config.synthesize.seed)
    visibility = {
        f"answer_visibility_{name}": round(answer_visibility(rows, env), 4) for name, rows in records.items()
    }
    write_json(args.metrics_out, visibility)


if __name__ == "__main__":
    run_stage("visibility", main)
