"""What the Prefect flows in flows/ share: DVC commands streamed into the run's logs, params.yaml overrides,
the checks that a configured server answers (and their tasks), and a small command line.

The flows stay thin: DVC decides what is up to date and the stages do the work; nothing here re-implements
a stage. Orchestration only: the stages and the rezero package never import it. No logging setup or
environment changes at import.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect import task

from flows import reports
from rezero.core.config import SECTIONS, RewardParams
from rezero.core.errors import PipelineError
from rezero.core.io import atomic_write_text
from rezero.external.redaction import authorized_request, redact_url

START_HINT = "Start it with `bash infra/services.sh start`"
# Output that marks a failure worth retrying: a busy DVC lock or a service that did not answer. Anything
# else (bad params, a bug, a stage's own error) fails at once: re-running a deterministic stage won't help.
TRANSIENT_MARKERS = (
    "Unable to acquire lock",
    "is unreachable",
    "Connection refused",
    "Connection reset",
    "Temporary failure in name resolution",
    "Read timed out",
    "503 Service Unavailable",
    "502 Bad Gateway",
    "database is locked",
)
VARIANTS = ("rezero", "no_retry")


class CommandFailed(PipelineError):
    """A DVC command exited non-zero; the message ends with the last lines it printed."""


def project_root(project_dir: str | None, flow_file: str) -> Path:
    """The DVC project a flow runs in: the given folder, else the checkout holding the flow's file (not
    the rezero package's folder: an editable install may point at another checkout)."""
    root = Path(project_dir or Path(flow_file).resolve().parents[1]).resolve()
    if not (root / "dvc.yaml").is_file():
        raise PipelineError(f"{root}: no dvc.yaml here; pass project_dir = the project's root folder.")
    return root


def command_environment(project: Path) -> dict[str, str]:
    """The flow's environment for DVC: this venv first on PATH (stage commands call `python`), unbuffered
    output so lines stream as they are printed, and a git identity for `dvc exp run` when none is set."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    identity = subprocess.run(["git", "config", "user.email"], cwd=project, capture_output=True, text=True)
    if not identity.stdout.strip():
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", "rezero flows")
            env.setdefault(f"GIT_{role}_EMAIL", "rezero-flows@localhost")
    return env


def run_dvc(project: Path, args: list[str], log: Callable[[str], Any], tail_lines: int = 20) -> None:
    """Run `dvc <args>` in `project`, sending each output line to `log`; raise CommandFailed with the
    command's last lines when it fails."""
    command = [sys.executable, "-m", "dvc", *args]
    log(f"$ dvc {' '.join(args)}")
    tail: list[str] = []
    with subprocess.Popen(
        command,
        cwd=project,
        env=command_environment(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:  # text mode splits progress bars' "\r" updates into lines too
            if line.strip():
                log(line.rstrip())
                tail = [*tail[-(tail_lines - 1) :], line.rstrip()]
    if process.returncode != 0:
        code = process.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        raise CommandFailed(
            f"`dvc {' '.join(args)}` failed ({how}) in {project}; last lines:\n" + "\n".join(tail)
        )


def stage_names(project: Path) -> list[str]:
    """The pipeline's stages in dvc.yaml's order, as DVC lists them (`dvc stage list --names-only`)."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--names-only"],
        cwd=project,
        env=command_environment(project),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise CommandFailed(f"`dvc stage list` failed in {project}: {result.stderr.strip()}")
    return result.stdout.split()


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only failures whose message shows a busy lock or a lost
    service (the failed state's message carries the exception text, stage output included)."""
    return any(marker in (state.message or "") for marker in TRANSIENT_MARKERS)


def resolve_overrides(
    params: Mapping[str, Any],
    profile: str | None,
    variant: str | None,
    steps: int | None,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The flow's parameters as dotted params.yaml keys → values.

    `variant` sets rewards.weights.retry (no_retry: 0; rezero: the paper's weight, RewardParams' default).
    A key the chosen profile also sets (`profiles.<profile>.<key>`) is written there too, so the value given
    is the value the stages use.
    """
    resolved: dict[str, Any] = dict(overrides or {})
    for key in resolved:
        check_key(key)
    named = {"profile": profile, "train.max_steps": steps}
    if variant is not None:
        if variant not in VARIANTS:
            raise PipelineError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}.")
        named["rewards.weights.retry"] = 0.0 if variant == "no_retry" else RewardParams().weights.retry
    for key, value in named.items():
        if value is None:
            continue
        if key in resolved and resolved[key] != value:
            raise PipelineError(
                f"override {key}={resolved[key]!r} contradicts the flow's parameters ({value!r})."
            )
        resolved[key] = value
    active = resolved.get("profile", params.get("profile", "cpu"))
    profiles = params.get("profiles") or {}
    if active != "cpu" and active not in profiles:
        raise PipelineError(
            f"profile {active!r} is not defined under `profiles` in params.yaml ({', '.join(profiles)})."
        )
    for key, value in list(resolved.items()):
        if lookup(profiles.get(active) or {}, key) is not _MISSING:
            resolved[f"profiles.{active}.{key}"] = value
    return resolved


def check_key(key: str) -> None:
    """Reject keys that no stage reads: `section.field[.entry]` of rezero/core/config.py, or `profile(s)…`."""
    section, _, rest = key.partition(".")
    if section in ("profile", "profiles"):
        return
    if section not in SECTIONS or not rest:
        raise PipelineError(
            f"override {key!r}: expected <section>.<key> with a section of {', '.join(SECTIONS)}."
        )
    fields = SECTIONS[section].__dataclass_fields__
    if rest.split(".")[0] not in fields:
        raise PipelineError(
            f"override {key!r}: {section} has no key {rest.split('.')[0]!r}; known: {', '.join(fields)}."
        )


_MISSING = object()


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def write_params(path: Path, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys in params.yaml in place, keeping its comments and order (as `dvc exp run -S`)."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode: comments and order survive
    # params.yaml's own layout, so only the changed values show in `git diff params.yaml`.
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    data = yaml.load(path.read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    out = io.StringIO()
    yaml.dump(data, out)
    atomic_write_text(path, out.getvalue())


def set_param_args(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """`dvc exp run` arguments for the overrides: `-S key=value`, `-S ++key=value` for a key params.yaml
    lacks (DVC's Hydra syntax for adding one). Values are JSON, which Hydra's grammar reads."""
    args = []
    for key, value in overrides.items():
        prefix = "" if lookup(params, key) is not _MISSING else "++"
        text = (
            str(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else json.dumps(value)
        )
        args += ["-S", f"{prefix}{key}={text}"]
    return args


def check_url(url: str, service: str, unset_hint: str) -> None:
    """Fail with the (redacted) URL and the command that starts the server when `url` (a health endpoint)
    is down; credentials in the URL are sent as a header."""
    try:
        with urllib.request.urlopen(authorized_request(url), timeout=5) as response:
            response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        base = redact_url(url.rsplit("/", 1)[0])
        raise PipelineError(
            f"{service} server at {base} is unreachable ({err}). {START_HINT}, or {unset_hint}."
        ) from err


def check_mlflow() -> None:
    from rezero.external import tracking

    if os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
        tracking.check_server(tracking.tracking_uri())


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=is_transient)
def check_mlflow_server() -> None:
    """The flows' first task: a configured MLflow server must answer before hours of training start."""
    check_mlflow()


@task(retries=3, retry_delay_seconds=10)
def find_mlflow_run(project: str) -> reports.MlflowRun:
    return reports.find_mlflow_run(Path(project))


def check_prefect() -> None:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:  # unset: Prefect starts a temporary local server itself
        check_url(f"{url.rstrip('/')}/health", "Prefect", "unset PREFECT_API_URL to use a temporary server")


def main(flow: Any, argv: list[str] | None = None) -> None:
    """`python flows/<file>.py --name value ... --set key=value ...`: values are YAML (2, true, null);
    checks the Prefect server first, then runs the flow and exits non-zero when it fails."""
    import yaml

    from rezero.core.runtime import configure_environment, setup_logging

    configure_environment()
    setup_logging()
    parser = argparse.ArgumentParser(description=flow.description)
    for name in flow.parameters.properties:
        if name != "overrides":
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=yaml.safe_load)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="params.yaml override"
    )
    args = vars(parser.parse_args(argv))
    sets = args.pop("set")
    parameters = {k: v for k, v in args.items() if v is not None}
    if sets:
        parameters["overrides"] = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in sets)}
    try:
        check_prefect()
        flow(**parameters)
    except PipelineError as err:
        print(f"{flow.name}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
