"""Stage `index`: index the chunks (and optional paraphrased distractors, marked non-original) with the
configured backend: the embedded tantivy BM25 index by default, written to the index folder.

Params: index.*.
"""

import argparse
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_jsonl, write_json
from rezero.core.runtime import run_stage
from rezero.retrieval import build_index, chunk_documents, load_distractors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("chunks", type=Path, help="chunks JSONL from `chunk`")
    parser.add_argument("index_out", type=Path, help="index folder (replaced atomically)")
    parser.add_argument("metrics_out", type=Path, help="index counts JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    params = load_config(args.params).index
    chunks = read_jsonl(args.chunks)
    documents = chunk_documents(chunks)
    if params.distractors:
        documents += load_distractors(params.distractors, chunks, params.distractors_sha256)
    manifest = build_index(params, documents, args.index_out)
    write_json(args.metrics_out, manifest)


if __name__ == "__main__":
    run_stage("index", main)
