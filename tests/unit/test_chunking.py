"""Chunk: Markdown and HTML tables flatten to blocks; the recursive splitter gives the paper's 341 chunks."""

from __future__ import annotations

import pytest

from rezero.core.errors import PipelineError
from rezero.data.chunking import chunk_document, chunk_id_for, markdown_to_blocks, text_to_blocks


def test_markdown_blocks_flatten_headings_paragraphs_lists_and_tables():
    markdown = (
        "# Heading\n\nA paragraph\nover two lines.\n\n- item one\n- item two\n\n"
        "<table><tr><td>Mission</td><td>Date</td></tr><tr><td>PA-1</td><td>1963</td></tr></table>\n"
    )
    blocks, tables = markdown_to_blocks(markdown)
    assert blocks == [
        "Heading",
        "A paragraph over two lines.",
        "item one",
        "item two",
        "Mission Date PA-1 1963",
    ]
    assert tables == 1


def test_text_blocks_split_on_blank_lines():
    assert text_to_blocks("one\ntwo\n\n\nthree  four\n") == ["one two", "three four"]


def test_chunks_respect_size_and_carry_stable_ids():
    text = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(30))
    first = chunk_document(text, "text", 300, 0)
    again = chunk_document(text, "text", 300, 0)
    assert first == again
    assert all(len(c["text"]) <= 300 for c in first)
    assert [c["position"] for c in first] == list(range(len(first)))
    assert len({c["chunk_id"] for c in first}) == len(first)
    assert first[0]["chunk_id"] == chunk_id_for(0, first[0]["text"])


def test_chunk_overlap_repeats_text_between_neighbours():
    text = " ".join(f"w{i}" for i in range(400))
    chunks = chunk_document(text, "text", 200, 50)
    assert chunks[1]["text"].split()[0] in chunks[0]["text"]


def test_mission_report_gives_the_papers_341_chunks(mission_chunks):
    lengths = [len(c["text"]) for c in mission_chunks]
    assert len(mission_chunks) == 341
    assert max(lengths) <= 1000
    assert 700 < sum(lengths) / len(lengths) < 760  # paper: mean about 730


def test_mission_report_chunks_contain_the_papers_paragraphs(mission_chunks, noise_csv):
    import csv

    paragraphs = {row["original_paragraph"] for row in csv.DictReader(noise_csv.open(encoding="utf-8"))}
    found = sum(any(p in c["text"] for c in mission_chunks) for p in paragraphs)
    assert found / len(paragraphs) > 0.99


@pytest.mark.parametrize("size", [0, -5])
def test_non_positive_chunk_size_is_refused(size):
    with pytest.raises(PipelineError, match="positive"):
        chunk_document("some text", "text", size, 0)


def test_document_of_only_tables_is_refused():
    tables = "<table><tr><td>a</td></tr></table>\n\n<table><tr><td>b</td></tr></table>\n"
    with pytest.raises(PipelineError, match="only tables"):
        chunk_document(tables, "markdown", 1000, 0)
