"""The README's DVC commands use options their command has (`dvc repro` has no `-S`; `dvc exp run` has)."""

from __future__ import annotations

import re
import shlex
import subprocess
from functools import cache

from tests.conftest import PROJECT_ROOT

# `dvc exp run -S x=1`, in a code block or in backticks; up to a comment, a closing backtick or a `;`.
COMMAND_RE = re.compile(r"(?:^|`)(dvc (?:[a-z]+ )?[a-z]+(?: [^`#;\n]*)?)", re.M)
SUBCOMMANDS_WITH_A_SECOND_WORD = {"exp", "plots", "metrics", "params", "remote", "cache"}


def readme_dvc_commands() -> list[list[str]]:
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    return [shlex.split(m.group(1).replace("…", "")) for m in COMMAND_RE.finditer(text)]


@cache
def help_text(*command: str) -> str:
    result = subprocess.run(["dvc", *command, "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, f"`dvc {' '.join(command)}` is not a DVC command: {result.stderr}"
    return result.stdout


def test_every_dvc_command_in_the_readme_uses_options_it_has():
    commands = readme_dvc_commands()
    assert len(commands) > 10  # the pattern still finds them
    wrong = []
    for words in commands:
        sub = words[1:3] if words[1] in SUBCOMMANDS_WITH_A_SECOND_WORD else words[1:2]
        options = {w.split("=")[0] for w in words if w.startswith("-")}
        usage = help_text(*sub)
        wrong += [f"dvc {' '.join(sub)} {o}" for o in options if not re.search(rf"(?<![\w-]){o}\b", usage)]
    assert not wrong, f"README commands with options DVC does not have: {wrong}"
