"""Chunk: flatten the document into text blocks, then split them with a recursive character splitter.

The paper's 341 chunks come from flattening the Markdown (and its HTML tables) into plain-text blocks
joined by blank lines, then LangChain's RecursiveCharacterTextSplitter(1000, 0). Here Markdown is rendered
to HTML with `markdown`, blocks are read with BeautifulSoup (each paragraph, heading, list item and table
one block, whitespace collapsed; a table is its cells' text joined by spaces, as in the paper's chunks).
On the mission report this gives exactly 341 chunks; 722 of the paper's 727 distinct paragraphs
reappear verbatim inside them (the 5 others are tables whose cell order differs).
"""

from __future__ import annotations

import hashlib
import logging
import re

from rezero.core.errors import PipelineError

log = logging.getLogger(__name__)

BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "pre"]
SEPARATORS = [
    "\n\n",
    "\n",
    " ",
    "",
]  # the splitter's defaults, stated because the chunk count depends on them


def markdown_to_blocks(markdown_text: str) -> tuple[list[str], int]:
    """Markdown (with inline HTML tables) → plain-text blocks, and how many of them were tables."""
    import markdown
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markdown.markdown(markdown_text, extensions=["tables"]), "html.parser")
    blocks, tables = [], 0
    for element in soup.find_all(BLOCK_TAGS):
        # Nested blocks are read as part of their table or list item, never twice.
        if element.find_parent("table") or (element.name == "p" and element.find_parent("li")):
            continue
        if element.name == "table":
            text = " ".join(cell.get_text(" ", strip=True) for cell in element.find_all(["td", "th"]))
        else:
            text = element.get_text()
        text = collapse_whitespace(text)
        if text:
            blocks.append(text)
            tables += element.name == "table"
    return blocks, tables


def text_to_blocks(text: str) -> list[str]:
    """Plain text → blocks separated by blank lines."""
    return [b for b in (collapse_whitespace(p) for p in re.split(r"\n\s*\n", text)) if b]


def collapse_whitespace(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def chunk_id_for(position: int, text: str) -> str:
    """Stable id: position plus a content hash, so a changed text never keeps a stale id."""
    return f"{position:04d}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def chunk_document(text: str, fmt: str, chunk_size: int, chunk_overlap: int) -> list[dict]:
    """Split a normalised document into chunks `{"chunk_id", "position", "text"}` in document order."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if chunk_size <= 0:
        raise PipelineError(f"chunk_size must be a positive number of characters, got {chunk_size}.")
    if fmt == "markdown":
        blocks, tables = markdown_to_blocks(text)
        if blocks and tables == len(blocks):
            raise PipelineError(
                f"the document holds only tables ({tables}) and no prose: there is nothing to ask "
                "questions about. Ingest a document with running text."
            )
    else:
        blocks = text_to_blocks(text)
    if not blocks:
        raise PipelineError("the document has no text blocks after flattening; is it empty markup?")
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, separators=SEPARATORS
    )
    pieces = splitter.split_text("\n\n".join(blocks))
    chunks = [
        {"chunk_id": chunk_id_for(i, piece), "position": i, "text": piece} for i, piece in enumerate(pieces)
    ]
    log.info(
        "split %d blocks into %d chunks (size %d, overlap %d)",
        len(blocks),
        len(chunks),
        chunk_size,
        chunk_overlap,
    )
    return chunks
