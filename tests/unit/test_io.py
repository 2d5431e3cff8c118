"""Atomic outputs: readable by others as an ordinary write would be, and never half-written."""

from __future__ import annotations

import os
import stat

import pytest

from rezero.io import atomic_directory, atomic_write_text, read_json, write_json


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_and_folders_get_the_umask_modes_not_tempfiles_private_ones(tmp_path, umask_022):
    atomic_write_text(tmp_path / "metrics.json", "{}\n")
    with atomic_directory(tmp_path / "adapter") as folder:
        (folder / "weights").write_text("w")
    assert mode(tmp_path / "metrics.json") == 0o644
    assert mode(tmp_path / "adapter") == 0o755


def test_a_failed_write_keeps_the_previous_file_and_folder(tmp_path):
    write_json(tmp_path / "metrics.json", {"accuracy": 0.25})
    with atomic_directory(tmp_path / "adapter") as folder:
        (folder / "weights").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "adapter") as folder:
        (folder / "weights").write_text("new")
        raise RuntimeError("stage failed")
    with pytest.raises(TypeError):
        write_json(tmp_path / "metrics.json", {"accuracy": object()})
    assert read_json(tmp_path / "metrics.json") == {"accuracy": 0.25}
    assert (tmp_path / "adapter" / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "metrics.json"]  # no temporaries
