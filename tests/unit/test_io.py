"""Atomic outputs: readable by others as an ordinary write would be, and never half-written."""

from __future__ import annotations

import os
import stat

import pytest

from rezero.core.errors import PipelineError
from rezero.core.io import atomic_directory, atomic_write_text, read_json, read_jsonl, write_json


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


def test_a_jsonl_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(PipelineError, match=r"qa\.jsonl:2: not UTF-8 text"):
        read_jsonl(path)


def test_a_writer_removes_what_a_killed_writer_of_the_same_output_left(tmp_path):
    target = tmp_path / "warmstart"
    (tmp_path / ".warmstart.k1ll3d.tmp").mkdir()
    (tmp_path / ".warmstart.k1ll3d.tmp" / "adapter_model.safetensors").write_text("half")
    (tmp_path / ".warmstart.old").mkdir()
    (tmp_path / ".other.k1ll3d.tmp").mkdir()  # another output's: not this writer's to remove
    with atomic_directory(target) as tmp:
        (tmp / "done").write_text("yes")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.k1ll3d.tmp", "warmstart"]
    (tmp_path / ".metrics.json.x.tmp").write_text("{")
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert not (tmp_path / ".metrics.json.x.tmp").exists()
