"""Stage `train`: GRPO with TRL + LoRA on the training questions, searching the index in multi-turn episodes.
Saves a checkpoint every `train.save_steps` steps; re-running after an interruption resumes from the last
complete checkpoint when the configuration is unchanged. Logs to MLflow (MLFLOW_TRACKING_URI, else the local
SQLite store).

With a warm start (`warmstart.enabled`), GRPO continues the `warmstart` stage's adapter. Its questions are the
training questions the `passrate` stage found the warm start likely to answer right sometimes but not always
(filled up at random to `passrate.min_questions`), never those the warm start demonstrated.

With REZERO_ACCELERATE_CONFIG=<accelerate config> (infra/accelerate/: 2 CPU processes, 1 GPU, several GPUs,
DeepSpeed ZeRO-2), the stage re-launches itself under `accelerate launch`: each process rolls out its share
of a step's episodes; the main process saves the checkpoints and logs to MLflow.

Params: profile, train.*, agent.*, rewards.*, tracking.experiment, tracking.trace_rollouts, warmstart.enabled,
passrate.enabled/min_logprob/max_logprob/min_questions/seed (profiles.<profile> overrides them).
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import read_jsonl, write_json
from rezero.core.runtime import is_main_process, relaunch_under_accelerate, run_stage, seed_everything
from rezero.retrieval import open_retriever


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_qa", type=Path, help="training QA JSONL from `synthesize`")
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("warmstart", type=Path, help="warm-start adapter folder from `warmstart`")
    parser.add_argument("scores", type=Path, help="per-question answer log-probabilities from `passrate`")
    parser.add_argument("checkpoints_out", type=Path, help="checkpoint folder (kept across runs for resume)")
    parser.add_argument("metrics_out", type=Path, help="training summary JSON (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    relaunch_under_accelerate(sys.argv[0], sys.argv[1:])

    from rezero.training.checkpoints import adapter_fingerprint, demonstrated_questions, warmstart_adapter
    from rezero.training.grpo import TrainingSetup, train
    from rezero.training.passrate import candidate_questions, grpo_questions

    config = load_config(args.params)
    adapter, warmstart_run = warmstart_adapter(args.warmstart, config.warmstart.enabled)
    records, selection = grpo_questions(
        candidate_questions(read_jsonl(args.train_qa), demonstrated_questions(args.warmstart)),
        args.scores,
        config.passrate,
        config.train.questions_per_step,
    )
    setup = TrainingSetup(
        train=config.train,
        agent=config.agent,
        rewards=config.rewards,
        profile=config.profile,
        # Checkpoints resume only onto the same questions, index and warm start (its weights, not its run id:
        # a warm start re-run bit for bit, as `dvc repro -f` does, keeps a finished training).
        data_fingerprint=hashlib.sha256(
            json.dumps(records, sort_keys=True).encode()
            + (args.index / "manifest.json").read_bytes()
            + (adapter_fingerprint(adapter).encode() if adapter else b"")
        ).hexdigest(),
        tracking=config.tracking,
        warmstart_run=warmstart_run,
    )
    seed_everything(setup.train.seed)
    summary = train(setup, records, open_retriever(args.index), args.checkpoints_out, adapter)
    if is_main_process():
        labels = {"variant": setup.rewards.variant, "seed": setup.train.seed, "profile": setup.profile}
        write_json(args.metrics_out, {**summary, "selection": selection, **labels})


if __name__ == "__main__":
    run_stage("train", main)
