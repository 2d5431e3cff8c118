"""Shared test setup: offline environment, the project's venv on PATH, and the real corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rezero.runtime import configure_environment

configure_environment()
# Stage commands in dvc.yaml call `python` and `dvc`: make them this interpreter's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
MISSION_REPORT = SHARED_DATA / "mission_report.md"


def require_shared_file(path: Path) -> Path:
    """The real corpus: CI must have it (fail); elsewhere, skip with the reason."""
    if not path.is_file():
        message = f"{path} is missing: place the shared data beside the project (see README, Data)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mission_report() -> Path:
    return require_shared_file(MISSION_REPORT)


@pytest.fixture(scope="session")
def noise_csv() -> Path:
    return require_shared_file(SHARED_DATA / "paragraphs_noise.csv")


@pytest.fixture(scope="session")
def mission_chunks(mission_report: Path) -> list[dict]:
    from rezero.chunking import chunk_document

    return chunk_document(mission_report.read_text(encoding="utf-8"), "markdown", 1000, 0)
