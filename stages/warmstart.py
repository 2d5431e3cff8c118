"""Stage `warmstart`: a supervised warm start before GRPO. Builds expert episodes from the training questions
and the real index (a search, its real results, the gold answer; a share of them retry with a second search
first), fits a LoRA adapter of the training's shape on them with TRL's SFTTrainer (loss on the model's own
tokens only), and measures the adapter on the dev split: greedy answered share and accuracy, and how often it
searches again when sampled at the training temperature. `train` continues this adapter; the folder's
warmstart.json names the demonstrated questions, which GRPO leaves out. With `warmstart.enabled: false` the
folder only records that there is none.

Params: warmstart.*, train.model/dtype/temperature/lora_*/gradient_checkpointing, agent.*, the judge's
rewards.* keys, tracking.experiment, profile (profiles.<profile> overrides them).
"""

import argparse
import csv
import io
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import atomic_directory, atomic_write_text, read_jsonl, write_json
from rezero.core.runtime import run_stage, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_qa", type=Path, help="training QA JSONL from `synthesize`")
    parser.add_argument(
        "dev_qa", type=Path, help="dev QA JSONL from `synthesize` (the adapter is measured on it)"
    )
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("adapter_out", type=Path, help="warm-start adapter folder (replaced atomically)")
    parser.add_argument("metrics_out", type=Path, help="warm-start summary JSON (written)")
    parser.add_argument("loss_out", type=Path, help="loss by step CSV, for `dvc plots` (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    config = load_config(args.params)
    summary: dict = {"enabled": config.warmstart.enabled}
    history: list[dict] = []
    demonstrated: list[str] = []  # kept in the adapter's manifest (train leaves them out), not in the metrics
    from rezero.episode.judges import make_judge
    from rezero.training.checkpoints import WARMSTART_FILE

    if config.warmstart.enabled:
        from rezero.external import tracking
        from rezero.training.warmstart import close_killed_runs

        tracking.connect(config.tracking.experiment)  # a server that is down fails here, first
        close_killed_runs(args.adapter_out)
    with atomic_directory(args.adapter_out) as tmp:  # removes what killed warm starts left
        if config.warmstart.enabled:
            from rezero.retrieval import open_retriever
            from rezero.training.warmstart import WarmstartSetup, run_warmstart

            seed_everything(config.warmstart.seed)
            setup = WarmstartSetup(
                warmstart=config.warmstart,
                train=config.train,
                agent=config.agent,
                judge=make_judge(config.rewards),
                profile=config.profile,
                experiment=config.tracking.experiment,
            )
            result = run_warmstart(
                setup, read_jsonl(args.train_qa), read_jsonl(args.dev_qa), open_retriever(args.index), tmp
            )
            history, demonstrated = result.pop("log_history"), result.pop("demonstrated_ids")
            summary.update(result)
        manifest = {
            **summary,
            "demonstrated_ids": demonstrated,
            "model": config.train.model,
            "profile": config.profile,
        }
        write_json(tmp / WARMSTART_FILE, manifest)
    write_json(args.metrics_out, summary)
    atomic_write_text(args.loss_out, loss_csv(history))


def loss_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "loss", "learning_rate"])
    for entry in history:
        writer.writerow([entry["step"], round(entry["loss"], 4), entry.get("learning_rate", "")])
    return out.getvalue()


if __name__ == "__main__":
    run_stage("warmstart", main)
