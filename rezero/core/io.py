"""Atomic file output and JSONL: no half-written file is ever left looking valid."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rezero.core.errors import PipelineError


def orphaned_temporaries(path: str | Path) -> list[Path]:
    """The temporary siblings of `path` a killed writer left (`.<name>.*.tmp`, `.<name>.old`): the writer
    of `path` owns them, and DVC's lock means no other process of this workspace is writing it now."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted([*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.old")])


def remove_orphaned_temporaries(path: str | Path) -> None:
    for orphan in orphaned_temporaries(path):
        if orphan.is_dir() and not orphan.is_symlink():
            shutil.rmtree(orphan)
        else:
            orphan.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _default_mode(0o666))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def parse_jsonl(data: bytes, name: str | Path) -> list[tuple[int, Any]]:
    """Each non-empty line of JSONL `data` (UTF-8, a byte-order mark allowed) as (line number, value); text
    that is not UTF-8 or a line that is not JSON names `name`, the line and the fix."""
    rows = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise PipelineError(f"{name}:{number}: not UTF-8 text ({err.reason}); save it as UTF-8.") from err
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise PipelineError(f"{name}:{number}: not valid JSON ({err.msg}).") from err
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; a missing file or a bad line names the file, the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found. Run the stage that writes it (`dvc repro`) first.")
    records = []
    for number, record in parse_jsonl(path.read_bytes(), path):
        if not isinstance(record, dict):
            raise PipelineError(f"{path}:{number}: expected a JSON object per line.")
        records.append(record)
    return records


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found. Run the stage that writes it (`dvc repro`) first.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}).") from err


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path`, on failure it is removed.

    The previous folder stays in place until the new one is complete, so a failed build leaves the
    last good output serving.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, _default_mode(0o777))
        yield tmp
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _default_mode(mode: int) -> int:
    """`mode` less the process umask: what `open` and `mkdir` would give. `tempfile` makes its files 0600
    and folders 0700, which other users and containers mounting the outputs cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask
