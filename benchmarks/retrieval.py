"""Retrieval benchmark: index build time, p50/p95 latency and queries per second for 1,000 queries, one by
one and batched, on the pipeline's chunks. Ratios are against one-by-one embedded search measured in the
same run. When the QA split exists, it also reports how often the gold chunk is ranked first / in the top 5.

When ES_URL is set, Elasticsearch is measured the same way (batches through msearch) into an alias of its
own, deleted afterwards; `--es-modes bm25,hybrid` adds other modes (dense/hybrid embed every query first).

    python benchmarks/retrieval.py [--queries 1000] [--k 5] [--es-modes bm25]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rezero.core.runtime import configure_environment, setup_logging


def load_chunks(path: Path) -> list[dict]:
    from rezero.core.io import read_jsonl

    if path.is_file():
        return read_jsonl(path)
    from rezero.core.config import IngestParams
    from rezero.data.chunking import chunk_document
    from rezero.data.documents import ingest_document

    document = ingest_document(IngestParams())
    return chunk_document(document.text, document.format, 1000, 0)


def make_queries(chunks: list[dict], qa_path: Path, count: int, seed: int) -> list[str]:
    """Real questions when the QA split exists, topped up with 3-8 word windows taken from the chunks."""
    from rezero.core.io import read_jsonl

    rng = random.Random(seed)
    queries = [r["question"] for r in read_jsonl(qa_path)] if qa_path.is_file() else []
    while len(queries) < count:
        words = rng.choice(chunks)["text"].split()
        start = rng.randrange(max(1, len(words) - 8))
        queries.append(" ".join(words[start : start + rng.randint(3, 8)]))
    return queries[:count]


def time_single(retriever, queries: list[str], k: int) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    for query in queries:
        t0 = time.perf_counter()
        retriever.search(query, k)
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def time_batched(retriever, queries: list[str], k: int, batch: int) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    for i in range(0, len(queries), batch):
        t0 = time.perf_counter()
        retriever.search_many(queries[i : i + batch], k)
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def gold_chunk_rates(retriever, qa_path: Path, k: int) -> tuple[float, float] | None:
    from rezero.core.io import read_jsonl

    if not qa_path.is_file():
        return None
    records = [r for r in read_jsonl(qa_path) if r.get("chunk_id")]
    ranks = [[h.chunk_id for h in retriever.search(r["question"], k)] for r in records]
    top1 = sum(bool(ids) and ids[0] == r["chunk_id"] for ids, r in zip(ranks, records, strict=True))
    topk = sum(r["chunk_id"] in ids for ids, r in zip(ranks, records, strict=True))
    return top1 / len(records), topk / len(records)


@dataclass
class Measurement:
    """One engine's figures; latencies in seconds, totals for the whole query set."""

    name: str
    build_s: float
    single: list[float]
    single_total: float
    batched: list[float]
    batched_total: float
    rates: tuple[float, float] | None


def measure(name: str, params, chunks: list[dict], queries: list[str], args) -> Measurement:
    from rezero.retrieval import build_index, chunk_documents, open_retriever

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_index(params, chunk_documents(chunks), Path(tmp) / "index")
        build_s = time.perf_counter() - t0
        retriever = open_retriever(Path(tmp) / "index")
        retriever.search_many(queries[:20], args.k)  # warm up
        single, single_total = time_single(retriever, queries, args.k)
        batched, batched_total = time_batched(retriever, queries, args.k, args.batch)
        rates = gold_chunk_rates(retriever, args.qa, args.k)
    return Measurement(name, build_s, single, single_total, batched, batched_total, rates)


def report(result: Measurement, base_qps: float | None, chunks: int, count: int, args) -> None:
    """Print one engine's figures; `base_qps` None marks the baseline itself."""
    qps = count / result.single_total
    ratio = "1.00x (baseline)" if base_qps is None else f"{qps / base_qps:.2f}x"
    base_qps = base_qps or qps
    print(f"{result.name}: {chunks} chunks, {count} queries, k={args.k}")
    print(f"  index build            {result.build_s * 1000:8.1f} ms")
    print(
        f"  single  p50 / p95      {percentile(result.single, 50) * 1e3:8.3f} / "
        f"{percentile(result.single, 95) * 1e3:.3f} ms"
        f"   {qps:9.0f} q/s   {ratio}"
    )
    print(
        f"  batch {args.batch:<3d} p50 / p95   {percentile(result.batched, 50) * 1e3:8.3f} / "
        f"{percentile(result.batched, 95) * 1e3:.3f} ms/batch {count / result.batched_total:9.0f} q/s   "
        f"{(count / result.batched_total) / base_qps:.2f}x"
    )
    if result.rates:
        top1, topk = result.rates
        print(f"  gold chunk at rank 1: {top1:.1%}   in top {args.k}: {topk:.1%}  ({args.qa})")


def measure_elasticsearch(mode: str, chunks: list[dict], queries: list[str], args) -> Measurement:
    """Elasticsearch in `mode`, in an alias of its own that is deleted afterwards (whatever happens)."""
    from rezero.core.config import IndexParams
    from rezero.retrieval.es_connection import connect, settings_from_env

    params = IndexParams(backend="elasticsearch", mode=mode, es_index=f"rezero-bench-{os.getpid()}-{mode}")
    settings = settings_from_env()
    try:
        return measure(f"elasticsearch {mode} ({settings.host})", params, chunks, queries, args)
    finally:
        client = connect(settings, params)
        for name in client.indices.get(index=f"{params.es_index}-*", allow_no_indices=True):
            client.indices.delete(index=name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=Path, default=Path("data/chunks.jsonl"))
    parser.add_argument("--qa", type=Path, default=Path("data/qa/train.jsonl"))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5, help="hits per query (paper: 5)")
    parser.add_argument("--batch", type=int, default=50, help="queries per batched call (msearch for ES)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--es-modes", default="bm25", help="Elasticsearch modes, comma-separated")
    args = parser.parse_args()

    from rezero.core.config import IndexParams

    chunks = load_chunks(args.chunks)
    queries = make_queries(chunks, args.qa, args.queries, args.seed)
    embedded = measure("embedded (tantivy BM25)", IndexParams(), chunks, queries, args)
    report(embedded, None, len(chunks), len(queries), args)
    base_qps = len(queries) / embedded.single_total
    if not os.environ.get("ES_URL"):
        print("elasticsearch: skipped (set ES_URL; `bash infra/elasticsearch.sh start` runs one locally)")
        return
    for mode in args.es_modes.split(","):
        result = measure_elasticsearch(mode.strip(), chunks, queries, args)
        report(result, base_qps, len(chunks), len(queries), args)


if __name__ == "__main__":
    configure_environment()
    setup_logging("WARNING")
    main()
