"""The document and its chunks: ingestion, chunking and the data checks."""
