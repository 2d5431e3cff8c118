"""The README and docs: DVC, `rezero` and flow commands use options they have (`dvc repro` has no
`-S`), and every relative link and anchor resolves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
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
def help_of(*program: str) -> subprocess.CompletedProcess:
    """`program --help`, run once per program (each start imports DVC, Prefect or torch: seconds, and the
    docs show the same few programs many times)."""
    return subprocess.run([*program, "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT)


def help_text(*command: str) -> str:
    result = help_of("dvc", *command)
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


LINK_RE = re.compile(r"\]\(([^)\s]+)\)")
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def heading_anchors(page) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        in_code ^= line.startswith("```")
        if not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug if slug not in anchors else f"{slug}-1")
    return anchors


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in LINK_RE.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and anchor not in heading_anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


# `rezero ask …` and `python flows/compare.py --seeds 3`, in a code block or in backticks.
TOOL_COMMAND_RE = re.compile(r"(?:^|`)((?:rezero|python flows/\w+\.py) [^`#;\n]*)", re.M)


def test_every_rezero_and_flow_command_shown_has_its_subcommand_and_options():
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    commands = [shlex.split(m.group(1).replace("…", "")) for m in TOOL_COMMAND_RE.finditer(text)]
    commands = [words for words in commands if len(words) >= 2]  # "`rezero …`" names the tool only
    assert len(commands) >= 4  # the pattern still finds them
    wrong = []
    for words in commands:
        rezero = words[0] == "rezero"
        result = help_of(sys.executable, *(["-m", "rezero.cli"] if rezero else []), words[1])
        if result.returncode != 0:
            wrong.append(f"{' '.join(words[:2])}: --help failed: {result.stderr.strip()[-200:]}")
            continue
        options = {w.split("=")[0] for w in words if w.startswith("--")}
        wrong += [f"{' '.join(words[:2])} {o}" for o in options if o not in result.stdout]
    assert not wrong, f"commands shown with a subcommand or option the tool does not have: {wrong}"


PATH_RE = re.compile(r"\b(?:rezero|tests|stages|flows|benchmarks|infra)/[\w/.-]+\.(?:py|sh|yaml)\b")


def test_every_project_file_the_docs_name_exists():
    named = {path for page in PAGES for path in PATH_RE.findall(page.read_text(encoding="utf-8"))}
    assert len(named) > 20  # the pattern still finds them
    missing = sorted(path for path in named if not (PROJECT_ROOT / path).exists())
    assert not missing, f"the README or docs name files that do not exist: {missing}"
