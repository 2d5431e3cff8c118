"""Ingest: formats, provenance, and a clear PipelineError for every unusable source."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from rezero.core.config import IngestParams
from rezero.core.errors import PipelineError
from rezero.data.documents import decode_document, detect_format, ingest_document


def params_for(path: Path, sha256: str | None = None, **kwargs) -> IngestParams:
    return IngestParams(source=str(path), sha256=sha256, local_copies=[], **kwargs)


def make_pdf(text: str | None) -> bytes:
    """A real one-page PDF written by pypdf, with `text` drawn on it (None: a blank page)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    if text is not None:
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


class TestIngestDocument:
    def test_markdown_path_gives_text_and_provenance(self, tmp_path):
        path = tmp_path / "doc.md"
        path.write_bytes(b"# Title\r\n\r\nSome prose.\r\n")
        document = ingest_document(params_for(path))
        assert document.text == "# Title\n\nSome prose.\n"
        assert document.format == "markdown"
        assert document.provenance["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert document.provenance["size_bytes"] == path.stat().st_size
        assert {"source", "retrieved_at", "read_from"} <= set(document.provenance)

    def test_pdf_text_is_extracted(self, tmp_path):
        path = tmp_path / "doc.pdf"
        path.write_bytes(make_pdf("The service module carried two oxygen tanks"))
        document = ingest_document(params_for(path))
        assert "two oxygen tanks" in document.text
        assert document.provenance["format"] == "pdf"

    def test_real_mission_report_matches_its_pin(self, mission_report):
        sha = "6f0ef7d293d2bd4e1f25b4891218324fc8f10dafb903ff994d7dca7430e1e1c6"
        document = ingest_document(params_for(mission_report, sha))
        assert document.provenance["size_bytes"] == 280_432

    def test_url_source_prefers_a_matching_local_copy(self, mission_report):
        sha = "6f0ef7d293d2bd4e1f25b4891218324fc8f10dafb903ff994d7dca7430e1e1c6"
        params = IngestParams(
            source="http://127.0.0.1:9/mission_report.md", sha256=sha, local_copies=[str(mission_report)]
        )
        assert ingest_document(params).provenance["read_from"] == str(mission_report)

    def test_env_var_overrides_the_source(self, tmp_path, monkeypatch):
        path = tmp_path / "mine.txt"
        path.write_text("My own document.\n")
        monkeypatch.setenv("REZERO_SOURCE", str(path))
        document = ingest_document(IngestParams())
        assert document.provenance["source"] == str(path)


class TestIngestErrors:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "empty"),
            (b"   \n\n", "empty"),
            (b"\x00\x01\x02binary", "binary"),
            ("caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
        ],
        ids=["empty", "whitespace", "binary", "latin1"],
    )
    def test_unusable_text_is_refused_with_its_reason(self, tmp_path, content, message):
        path = tmp_path / "doc.md"
        path.write_bytes(content)
        with pytest.raises(PipelineError, match=message):
            ingest_document(params_for(path))

    def test_missing_file_names_the_path_and_the_fix(self, tmp_path):
        with pytest.raises(PipelineError, match=r"not found.*REZERO_SOURCE"):
            ingest_document(params_for(tmp_path / "nope.md"))

    def test_a_folder_is_named_as_a_folder(self, tmp_path):
        with pytest.raises(PipelineError, match=r"is a folder; the source must be one document file"):
            ingest_document(params_for(tmp_path))

    def test_sha256_mismatch_is_refused(self, tmp_path):
        path = tmp_path / "doc.md"
        path.write_text("text\n")
        with pytest.raises(PipelineError, match="sha256 mismatch"):
            ingest_document(params_for(path, "0" * 64))

    def test_pdf_without_text_asks_for_ocr(self, tmp_path):
        path = tmp_path / "scan.pdf"
        path.write_bytes(make_pdf(None))
        with pytest.raises(PipelineError, match="no extractable text"):
            ingest_document(params_for(path))

    def test_unreachable_url_without_local_copy_says_how_to_point_elsewhere(self):
        # Port 9 (discard) on loopback refuses the connection: no network is used.
        params = IngestParams(
            source="http://127.0.0.1:9/doc.md", sha256="a" * 64, local_copies=[], timeout_s=2
        )
        with pytest.raises(PipelineError, match=r"could not download.*ingest.source"):
            ingest_document(params)

    def test_unpinned_url_is_refused_at_configuration(self):
        with pytest.raises(ValueError, match="sha256"):
            IngestParams(source="https://example.org/doc.md", sha256=None)


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("a.md", b"x", "markdown"),
        ("a.txt", b"x", "text"),
        ("a.bin", b"%PDF-1.7", "pdf"),
        ("https://h/a.md?x=1", b"x", "markdown"),
        ("noext", b"x", "text"),
    ],
)
def test_detect_format(source, data, expected):
    assert detect_format(source, data) == expected


def test_decode_strips_bom_and_normalises_line_endings():
    assert decode_document(b"\xef\xbb\xbfa\r\nb\rc", "text", "x") == "a\nb\nc\n"
