"""The `train` stage through DVC under faults, with real processes: the training killed (SIGKILL) at random
moments and resumed by `dvc repro`, re-run once finished (`-f -s`, and `-f` with its warm start re-run),
refused a bad configuration, and a corrupt checkpoint trained again, without losing or changing a finished
checkpoint and with one MLflow run throughout."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import TINY_WARMSTART, copy_tiny, run, set_params

KILLS = 3


def complete_checkpoints(folder: Path) -> dict[str, str]:
    """sha256 of every file of each checkpoint whose save completed (TRL writes trainer_state.json last)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for checkpoint in folder.glob("checkpoint-*")
        if (checkpoint / "trainer_state.json").is_file()
        for path in sorted(checkpoint.rglob("*"))
        if path.is_file()
    }


def training_process(dvc: subprocess.Popen) -> int | None:
    """The pid of `python stages/train.py` that DVC started, once it runs.

    DVC runs the command through $SHELL: bash execs it (python is DVC's child), dash forks it (python is the
    shell's child, and the shell's own command line names stages/train.py too). Killing the shell would leave
    the training running as an orphan, so the python process is looked up among DVC's descendants.
    """
    return next((pid for pid in training_pids() if descends_from(pid, dvc.pid)), None)


def training_processes_in(project: Path) -> list[int]:
    """Pids of the trainings running in `project` (by their working directory), orphans included."""
    return [pid for pid in training_pids() if Path(f"/proc/{pid}/cwd").resolve() == project.resolve()]


def training_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "^python stages/train.py"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # field 4: ppid
        except (FileNotFoundError, ProcessLookupError):
            return False
        if pid == ancestor:
            return True
    return False


def mlflow_runs(project: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("rezero")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, tiny_before_training) -> Path:
    return copy_tiny(tiny_before_training, tmp_path_factory.mktemp("faults") / "copy")


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_to_the_same_end(trained_project):
    project, checkpoints = trained_project, trained_project / "checkpoints"
    rng = random.Random(13)
    finished: dict[str, str] = {}
    # SHELL=/bin/sh is dash, which forks the stage's command rather than exec it: the case where killing the
    # wrong process would leave the training running in the background
    env = {**os.environ, "SHELL": "/bin/sh", "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns.db'}"}
    for _ in range(KILLS):
        dvc = subprocess.Popen(
            ["dvc", "repro", "train"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen = len(complete_checkpoints(checkpoints)) if checkpoints.exists() else 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and dvc.poll() is None:  # wait for one more checkpoint
            if checkpoints.exists() and len(complete_checkpoints(checkpoints)) > seen:
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 4.0))  # then kill somewhere in the next step (sampling, loss, saving)
        pid = training_process(dvc)
        assert pid is not None and dvc.poll() is None, "the training finished before it could be killed"
        os.kill(pid, signal.SIGKILL)
        dvc.wait(timeout=120)
        assert dvc.returncode != 0
        assert not training_processes_in(project), "a training is still running after the kill"
        now = complete_checkpoints(checkpoints)
        assert {k: now[k] for k in finished} == finished, "a finished checkpoint changed after a kill"
        finished = now

    run(project, "dvc", "repro", "train")

    final = complete_checkpoints(checkpoints)
    assert {k: final[k] for k in finished} == finished  # resuming rewrote no finished checkpoint
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == [
        f"checkpoint-{i}" for i in range(1, 6)
    ]
    state = json.loads((checkpoints / "checkpoint-5/trainer_state.json").read_text())
    assert (state["global_step"], state["max_steps"]) == (5, 5)
    assert json.loads((project / "metrics/train.json").read_text())["steps"] == 5
    runs = [r for r in mlflow_runs(project) if r.data.tags.get("variant") == "rezero"]
    assert [r.info.status for r in runs] == ["FINISHED"]  # one run, resumed after each kill, closed


@pytest.mark.slow
def test_a_finished_training_re_run_does_no_extra_steps(trained_project):
    project, checkpoints = trained_project, trained_project / "checkpoints"
    if not (checkpoints / "checkpoint-5/trainer_state.json").is_file():
        run(project, "dvc", "repro", "train")
    before = complete_checkpoints(checkpoints)
    forced = run(project, "dvc", "repro", "-f", "-s", "train")
    assert "already finished" in forced.stderr + forced.stdout
    assert complete_checkpoints(checkpoints) == before  # no checkpoint-6, nothing rewritten
    assert json.loads((project / "metrics/train.json").read_text())["steps"] == 5
    assert len([r for r in mlflow_runs(project) if r.data.tags.get("variant") == "rezero"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({"rewards.weights.retyr": 1.0}, {}, "unknown key(s) retyr"),
        ({"rewards.judge": "llm"}, {}, "REZERO_JUDGE_BASE_URL"),
        (
            {"rewards.judge": "llm"},
            {"REZERO_JUDGE_BASE_URL": "http://u:s3cret@127.0.0.1:9/v1", "REZERO_JUDGE_MODEL": "m"},
            "LLM judge at http://***@127.0.0.1:9/v1 is unreachable",
        ),
    ],
    ids=["typo", "judge-without-endpoint", "dead-judge"],
)
def test_a_bad_configuration_is_refused_before_any_checkpoint_is_removed(
    trained_project, overrides, env, message
):
    project, checkpoints = trained_project, trained_project / "checkpoints"
    if not (checkpoints / "checkpoint-5/trainer_state.json").is_file():
        run(project, "dvc", "repro", "train")
    before, runs = complete_checkpoints(checkpoints), len(mlflow_runs(project))
    params = (project / "params.yaml").read_text()
    try:
        set_params(project, overrides)
        refused = run(project, "dvc", "repro", "train", check=False, env=env)
    finally:
        (project / "params.yaml").write_text(params)
    assert refused.returncode != 0
    assert message in refused.stderr and "s3cret" not in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    assert complete_checkpoints(checkpoints) == before
    assert len(mlflow_runs(project)) == runs  # no run started (nor a new `no_retry-…` one for the typo)


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_trained_again_never_recorded_by_dvc(trained_project):
    project, checkpoints = trained_project, trained_project / "checkpoints"
    set_params(project, {"evaluate.max_questions": 2})
    run(project, "dvc", "repro", "evaluate")
    before = complete_checkpoints(checkpoints)
    (checkpoints / "checkpoint-3/adapter_model.safetensors").write_bytes(b"x" * 100)  # truncated
    healed = run(project, "dvc", "repro", "evaluate")  # DVC sees train's output changed and re-runs it
    assert "checkpoint-3 cannot be used" in healed.stderr and "resumes from checkpoint-2" in healed.stderr
    from rezero.training.checkpoints import check_adapters, checkpoint_dirs

    check_adapters(checkpoint_dirs(checkpoints))  # every checkpoint DVC recorded loads
    assert sorted(complete_checkpoints(checkpoints)) == sorted(before)  # steps 3-5 saved again, whole
    status = run(project, "dvc", "status", "train", "evaluate")
    assert "up to date" in status.stdout
    runs = [r for r in mlflow_runs(project) if r.data.tags.get("variant") == "rezero"]
    assert [r.info.status for r in runs] == ["FINISHED"]  # the same run continued


@pytest.mark.slow
def test_evaluate_refuses_a_corrupt_checkpoint_before_scoring_and_keeps_every_output(trained_project):
    project = trained_project
    set_params(project, {"evaluate.max_questions": 2})
    run(project, "dvc", "repro", "evaluate")
    outputs = ["models/best_adapter", "evaluation", "metrics/evaluate.json"]
    before = {o: tree_hashes(project / o) for o in outputs}
    weights = project / "checkpoints/checkpoint-1/adapter_model.safetensors"
    original = weights.read_bytes()
    command = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["evaluate"]["cmd"]
    try:
        weights.write_bytes(original[:100])
        # The stage itself, as after a copy from elsewhere: DVC would have `train` heal it first.
        refused = run(project, "bash", "-c", interpolate(project, command), check=False)
    finally:
        weights.write_bytes(original)
    assert refused.returncode != 0
    assert "checkpoint-1 (" in refused.stderr and "Nothing was evaluated" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "Loading weights" not in refused.stderr  # refused before the model loaded
    assert {o: tree_hashes(project / o) for o in outputs} == before


def interpolate(project: Path, command: str) -> str:
    """A dvc.yaml command with its `${paths.*}` filled in."""
    paths = yaml.safe_load((project / "dvc.yaml").read_text())["vars"][0]["paths"]
    return re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], " ".join(command.split()))


@pytest.mark.slow
def test_dvc_repro_force_re_runs_the_warm_start_and_keeps_the_finished_training(
    tmp_path, tiny_before_training
):
    """`dvc repro -f train` re-runs every stage before `train`, the warm start included (a new MLflow run,
    the same weights bit for bit): the finished training is recognised, not discarded."""
    project = copy_tiny(tiny_before_training, tmp_path / "copy")
    set_params(project, {**TINY_WARMSTART, "train.max_steps": 1})
    run(project, "dvc", "repro", "train")
    checkpoints, manifest = project / "checkpoints", project / "models/warmstart/warmstart.json"
    before, warm_run = complete_checkpoints(checkpoints), json.loads(manifest.read_text())["mlflow_run_id"]
    forced = run(project, "dvc", "repro", "-f", "train")
    assert json.loads(manifest.read_text())["mlflow_run_id"] != warm_run  # the warm start ran again
    assert "already finished" in forced.stderr + forced.stdout
    assert "configuration changed" not in forced.stderr
    assert complete_checkpoints(checkpoints) == before
    assert len([r for r in mlflow_runs(project) if r.data.tags.get("variant") == "rezero"]) == 1


def tree_hashes(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def start_mlflow_server(port: int, root: Path, auth: dict[str, str] | None = None) -> subprocess.Popen:
    """A real `mlflow server` on `port` storing in `root`; with `auth` ({"admin_password": ...}) its
    basic-auth app, whose admin is `admin` with that password."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    app = []
    if auth:
        config = root / "basic_auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{root / 'basic_auth.db'}\nadmin_username = admin\n"
            f"admin_password = {auth['admin_password']}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"], app = str(config), ["--app-name", "basic-auth"]
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "test-csrf-key"  # the auth app's CSRF protection needs one
    server = subprocess.Popen(
        [
            "mlflow",
            "server",
            *app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError("the MLflow server did not start in 120 s")


def wait_for_checkpoint(checkpoints: Path, step: int, seed: int, process: subprocess.Popen) -> None:
    metadata = checkpoints / f"checkpoint-{step}" / "rezero_checkpoint.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if metadata.is_file() and json.loads(metadata.read_text())["seed"] == seed:
            return
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint-{step} of seed {seed} (training exited {process.poll()})")


@pytest.mark.slow
def test_training_holds_its_metrics_through_an_mlflow_server_outage(trained_project, tmp_path):
    """Runs last in this module: a new seed retrains from scratch, logging to a real MLflow server that is
    stopped after step 1 and started again (same store) after step 3."""
    from mlflow.tracking import MlflowClient

    project, checkpoints = trained_project, trained_project / "checkpoints"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(port, tmp_path)
    set_params(project, {"train.seed": 5})
    training = subprocess.Popen(
        ["dvc", "repro", "train"],
        cwd=project,
        env={**os.environ, "MLFLOW_TRACKING_URI": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_checkpoint(checkpoints, 1, 5, training)
        server.terminate()
        server.wait(timeout=60)
        wait_for_checkpoint(checkpoints, 3, 5, training)  # the training goes on without its server
        server = start_mlflow_server(port, tmp_path)
        output, _ = training.communicate(timeout=900)
        assert training.returncode == 0, output[-3000:]
        assert "did not answer" in output and "held metric values logged" in output
        client = MlflowClient(url)
        (run,) = client.search_runs([client.get_experiment_by_name("rezero").experiment_id])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/reward/total")]
        assert sorted(steps) == [1, 2, 3, 4, 5]  # none lost in the outage
        assert run.info.status == "FINISHED"
        assert not (checkpoints / "mlflow_pending.json").exists()
    finally:
        training.kill()
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, "KILLED"), (signal.SIGKILL, "KILLED")])
def test_a_killed_warm_start_leaves_no_running_run_nor_half_written_folder(
    tmp_path, tiny_before_training, sig, status
):
    """SIGTERM: the warm start closes its own run KILLED. SIGKILL: nothing can run, so the next warm start
    finds the unfinished folder, marks the run it names KILLED and removes the folder."""
    project = copy_tiny(tiny_before_training, tmp_path / "copy")  # the data stages have run
    set_params(project, {**TINY_WARMSTART, "warmstart.epochs": 20.0})  # long enough to kill
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns.db'}"}
    dvc = subprocess.Popen(["dvc", "repro", "warmstart"], cwd=project, env=env, stdout=subprocess.DEVNULL)
    marker = None
    deadline = time.monotonic() + 300
    while marker is None and time.monotonic() < deadline:  # the run is open and training
        marker = next(iter(project.glob("models/.warmstart.*.tmp/.mlflow_run_id")), None)
        time.sleep(0.2)
    assert marker is not None, "the warm start did not start training"
    killed_run = marker.read_text()
    time.sleep(3)
    pid = next(p for p in warmstart_pids() if descends_from(p, dvc.pid))
    os.kill(pid, sig)
    dvc.wait(timeout=120)
    statuses = {r.info.run_id: r.info.status for r in mlflow_runs(project)}
    if sig == signal.SIGTERM:
        assert statuses[killed_run] == status and not list(project.glob("models/.warmstart.*.tmp"))
    else:
        assert statuses[killed_run] == "RUNNING" and list(project.glob("models/.warmstart.*.tmp"))
        set_params(project, {"warmstart.epochs": 1.0})
        run(project, "dvc", "repro", "warmstart")
        statuses = {r.info.run_id: r.info.status for r in mlflow_runs(project)}
        assert statuses[killed_run] == status
        assert not list(project.glob("models/.warmstart.*"))  # the orphan is gone
        assert sorted(statuses.values()) == ["FINISHED", "KILLED"]


def warmstart_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "^python stages/warmstart.py"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_reaches_the_server_and_is_stored_or_printed_nowhere(
    tmp_path, tiny_before_training
):
    """A real MLflow server with basic authentication, its password given in MLFLOW_TRACKING_URI: the
    training logs to it, and no output, log, dvc.lock, run.json, metrics file or MLflow store holds it."""
    secret = "s3cret-PW-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]
    project, server_root = copy_tiny(tiny_before_training, tmp_path / "work"), tmp_path / "server"
    server_root.mkdir()
    set_params(project, {"train.max_steps": 1})
    port = free_port()
    server = start_mlflow_server(port, server_root, auth={"admin_password": secret})
    try:
        env = {"MLFLOW_TRACKING_URI": f"http://admin:{secret}@127.0.0.1:{port}"}
        trained = run(project, "dvc", "repro", "train", env=env)
        wrong = run(
            project,
            "dvc",
            "repro",
            "-f",
            "-s",
            "train",
            check=False,
            env={"MLFLOW_TRACKING_URI": f"http://admin:wrong-{secret}@127.0.0.1:{port}"},
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert json.loads((project / "metrics/train.json").read_text())["steps"] == 1
    # The credentials moved to MLflow's own variables: the stored URL holds none.
    assert (
        json.loads((project / "checkpoints/run.json").read_text())["tracking_uri"]
        == f"http://127.0.0.1:{port}"
    )
    assert wrong.returncode != 0 and "401" in wrong.stderr and f"127.0.0.1:{port}" in wrong.stderr
    assert "refused experiment" in wrong.stderr and "Traceback" not in wrong.stderr
    printed = trained.stdout + trained.stderr + wrong.stdout + wrong.stderr
    assert secret not in printed
    leaks = [
        str(path)
        for root in (project, server_root)
        for path in root.rglob("*")
        if path.is_file() and path.name != "basic_auth.ini" and secret.encode() in path.read_bytes()
    ]
    assert not leaks, f"the password is stored in {leaks}"
    with sqlite3.connect(server_root / "mlflow.db") as db:  # the training's run, with its metrics
        assert db.execute("select count(*) from metrics where key = 'train/loss'").fetchone()[0] >= 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
