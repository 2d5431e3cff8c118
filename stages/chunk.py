"""Stage `chunk`: flatten the ingested document into text blocks and split them into chunks
(paper: size 1000, overlap 0 → 341 chunks), checked by a Great Expectations suite before anything is written.

Params: chunk.chunk_size, chunk.chunk_overlap, chunk.expected_count, and the `format` of `ingest`'s
provenance.json: dvc.yaml tracks only that key of it, so re-ingesting the same document (a new retrieval
time) does not re-run this stage.
"""

import argparse
import statistics
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_json, write_json, write_jsonl
from rezero.core.runtime import run_stage
from rezero.data.chunking import chunk_document
from rezero.data.validation import validate_chunks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("document", type=Path, help="normalised document from `ingest`")
    parser.add_argument("provenance", type=Path, help="provenance JSON from `ingest` (gives the format)")
    parser.add_argument("chunks_out", type=Path, help="chunks JSONL (written)")
    parser.add_argument("metrics_out", type=Path, help="chunk counts JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    params = load_config(args.params).chunk
    fmt = "markdown" if read_json(args.provenance).get("format") == "markdown" else "text"
    chunks = chunk_document(
        args.document.read_text(encoding="utf-8"), fmt, params.chunk_size, params.chunk_overlap
    )
    validate_chunks(chunks, params.chunk_size, params.expected_count)
    lengths = [len(c["text"]) for c in chunks]
    write_jsonl(args.chunks_out, chunks)
    write_json(
        args.metrics_out,
        {
            "chunks": len(chunks),
            "chars_min": min(lengths),
            "chars_max": max(lengths),
            "chars_mean": round(statistics.mean(lengths), 1),
        },
    )


if __name__ == "__main__":
    run_stage("chunk", main)
