"""Stage `ingest`: read the source document (Markdown, text or PDF; a path or a sha256-pinned URL) and write
it normalised (UTF-8, LF) with its provenance (source, sha256, size, retrieval time).

Params: ingest.* in params.yaml. REZERO_SOURCE / REZERO_SOURCE_SHA256 override the source.
"""

import argparse
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import atomic_write_text, write_json
from rezero.core.runtime import run_stage
from rezero.data.documents import ingest_document


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("document_out", type=Path, help="normalised document text (written)")
    parser.add_argument("provenance_out", type=Path, help="provenance JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    document = ingest_document(load_config(args.params).ingest)
    atomic_write_text(args.document_out, document.text)
    write_json(args.provenance_out, document.provenance)


if __name__ == "__main__":
    run_stage("ingest", main)
