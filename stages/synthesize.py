"""Stage `synthesize`: question/answer pairs from the chunks (offline rule-based generator by default, or any
OpenAI-compatible endpoint), kept only when grounded in their chunk, split train/test deterministically
and checked by a Great Expectations suite before anything is written.

Params: synthesize.*. The `openai` generator reads REZERO_QA_BASE_URL, REZERO_QA_API_KEY, REZERO_QA_MODEL.
"""

import argparse
from pathlib import Path

from rezero.synthesis import generate_pairs, split_train_test
from rezero.validation import validate_qa

from rezero.config import load_section
from rezero.io import read_jsonl, write_json, write_jsonl
from rezero.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("chunks", type=Path, help="chunks JSONL from `chunk`")
    parser.add_argument("train_out", type=Path, help="training QA JSONL (written)")
    parser.add_argument("test_out", type=Path, help="test QA JSONL (written)")
    parser.add_argument("metrics_out", type=Path, help="QA counts JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    params = load_section("synthesize", args.params)
    records, summary = generate_pairs(read_jsonl(args.chunks), params)
    train, test = split_train_test(records, params.test_fraction, params.seed)
    validate_qa(train, test, params.test_fraction)
    write_jsonl(args.train_out, train)
    write_jsonl(args.test_out, test)
    write_json(args.metrics_out, {**summary, "train": len(train), "test": len(test)})


if __name__ == "__main__":
    run_stage("synthesize", main)
