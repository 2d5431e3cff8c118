"""Stage `synthesize`: question/answer pairs about the chunks (by default the paper's published 318 pairs,
mapped to our chunks; or the offline rule-based generator, or any OpenAI-compatible endpoint), kept only when
grounded in their chunk, split train/test as the paper did, with a dev split carved from train (on which
checkpoints are chosen), and checked by a Great Expectations suite before anything is written. A data stage:
it never runs the agent (answer visibility is the `visibility` stage's).

Params: synthesize.*. The `openai` generator reads REZERO_QA_BASE_URL, REZERO_QA_API_KEY, REZERO_QA_MODEL.
"""

import argparse
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_jsonl, write_json, write_jsonl
from rezero.core.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("chunks", type=Path, help="chunks JSONL from `chunk`")
    parser.add_argument("train_out", type=Path, help="training QA JSONL (written)")
    parser.add_argument("test_out", type=Path, help="test QA JSONL (written)")
    parser.add_argument("dev_out", type=Path, help="dev QA JSONL, held out of train (written)")
    parser.add_argument("metrics_out", type=Path, help="QA counts JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.data.validation import validate_qa
    from rezero.synthesis import generate_pairs, split_dev, split_train_test

    params = load_config(args.params).synthesize
    records, summary = generate_pairs(read_jsonl(args.chunks), params)
    train, test = split_train_test(records, params.test_fraction, params.seed)
    train, dev = split_dev(train, params.dev_size, params.seed)
    validate_qa(train, test, params.test_fraction, dev)
    splits = {"train": train, "dev": dev, "test": test}
    for name, out in (("train", args.train_out), ("dev", args.dev_out), ("test", args.test_out)):
        write_jsonl(out, splits[name])
    write_json(args.metrics_out, {**summary, **{name: len(rows) for name, rows in splits.items()}})


if __name__ == "__main__":
    run_stage("synthesize", main)
