"""Ingest: read one source document (Markdown, plain text or PDF; a path or a pinned URL) with provenance."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rezero.core.config import IngestParams
from rezero.core.errors import PipelineError

log = logging.getLogger(__name__)

FORMATS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".pdf": "pdf"}
HOW_TO_POINT = (
    "Point `ingest.source` in params.yaml (or the environment variable REZERO_SOURCE) at a local "
    ".md, .txt or .pdf file, and set `ingest.sha256` (or REZERO_SOURCE_SHA256) to its sha256 or null."
)


@dataclass
class IngestedDocument:
    text: str
    format: str  # "markdown" or "text" (PDFs arrive as extracted text)
    provenance: dict


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def effective_source(params: IngestParams) -> tuple[str, str | None]:
    """The source and expected sha256, with REZERO_SOURCE / REZERO_SOURCE_SHA256 taking precedence."""
    if os.environ.get("REZERO_SOURCE"):
        return os.environ["REZERO_SOURCE"], os.environ.get("REZERO_SOURCE_SHA256") or None
    return params.source, params.sha256


def ingest_document(params: IngestParams, base_dir: Path = Path(".")) -> IngestedDocument:
    """Read, verify and normalise the configured source document."""
    source, expected_sha = effective_source(params)
    is_url = source.startswith(("http://", "https://"))
    if is_url:
        if not expected_sha:
            raise PipelineError(f"URL source {source} is not pinned: set its sha256. {HOW_TO_POINT}")
        data, read_from = read_pinned(
            source, expected_sha, params.local_copies, params.timeout_s, base_dir, HOW_TO_POINT
        )
    else:
        data, read_from = _read_path(base_dir / source), str(source)
    digest = sha256_hex(data)
    if expected_sha and digest != expected_sha.lower():
        raise PipelineError(
            f"{read_from}: sha256 mismatch: expected {expected_sha}, got {digest}. The file changed or is "
            f"not the pinned document; fix `ingest.sha256` (or REZERO_SOURCE_SHA256) if the new file is "
            "intended."
        )
    fmt = detect_format(source, data)
    text = decode_document(data, fmt, read_from)
    provenance = {
        "source": source,
        "read_from": read_from,
        "sha256": digest,
        "size_bytes": len(data),
        "format": fmt,
        "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "characters": len(text),
    }
    log.info("ingested %s (%d bytes, %s, sha256 %s)", read_from, len(data), fmt, digest[:12])
    return IngestedDocument(text=text, format="text" if fmt == "pdf" else fmt, provenance=provenance)


def _read_path(path: Path) -> bytes:
    if path.is_dir():
        raise PipelineError(f"{path}: is a folder; the source must be one document file. {HOW_TO_POINT}")
    if not path.is_file():
        raise PipelineError(f"{path}: source document not found. {HOW_TO_POINT}")
    return path.read_bytes()


def read_pinned(
    url: str,
    expected_sha: str,
    local_copies: list[str],
    timeout_s: float,
    base_dir: Path = Path("."),
    how_to_fix: str = "",
) -> tuple[bytes, str]:
    """The bytes of a sha256-pinned URL and where they were read from: a local copy with that sha256 first
    (it saves the download and makes offline runs possible), else the URL. The caller checks the digest of
    what was downloaded."""
    for copy in local_copies:
        path = base_dir / copy
        if path.is_file() and sha256_hex(data := path.read_bytes()) == expected_sha.lower():
            log.info("using local copy %s of %s (sha256 matches)", path, url)
            return data, str(copy)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read(), url
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise PipelineError(
            f"could not download {url} ({reason}) and no local copy with sha256 {expected_sha[:12]}… was "
            f"found in {local_copies}. {how_to_fix}".rstrip()
        ) from err


def detect_format(source: str, data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    suffix = Path(source.split("?")[0]).suffix.lower()
    return FORMATS.get(suffix, "text")


def decode_document(data: bytes, fmt: str, name: str) -> str:
    """Bytes → normalised text (UTF-8, LF line endings, no BOM); every unusable input is refused by name."""
    if not data.strip():
        raise PipelineError(f"{name}: the document is empty. {HOW_TO_POINT}")
    if fmt == "pdf":
        text = _pdf_text(data, name)
    else:
        if b"\x00" in data:
            raise PipelineError(f"{name}: looks like a binary file (NUL bytes), not {fmt}. {HOW_TO_POINT}")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise PipelineError(
                f"{name}: not UTF-8 text (invalid byte at offset {err.start}). Convert it to UTF-8 "
                f"(e.g. `iconv -f latin1 -t utf-8`). {HOW_TO_POINT}"
            ) from err
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise PipelineError(f"{name}: the document has no text. {HOW_TO_POINT}")
    return text if text.endswith("\n") else text + "\n"


def _pdf_text(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as err:
        raise PipelineError(f"{name}: unreadable PDF ({err}).") from err
    if not any(page.strip() for page in pages):
        raise PipelineError(
            f"{name}: the PDF has no extractable text ({len(pages)} pages; scanned images?). "
            "Run OCR on it first (e.g. `ocrmypdf`), or use a Markdown or text version."
        )
    # Pages become paragraphs so the chunker sees page breaks as block boundaries.
    return "\n\n".join(page.strip() for page in pages if page.strip())
