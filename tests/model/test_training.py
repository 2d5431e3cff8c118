"""A real 2-step GRPO run of the small model: loss logged, LoRA moved and the base did not, checkpoints saved
with their metadata, metrics in a real MLflow store, and an interrupted run resuming exactly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rezero.core.errors import PipelineError
from rezero.training.checkpoints import CHECKPOINT_FILE, RUN_FILE, checkpoint_dirs, latest_checkpoint
from tests.model.conftest import environment

pytestmark = pytest.mark.slow


def metric_history(store: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(store).get_metric_history(run_id, key)]


def test_training_saves_checkpoints_with_metadata(trained):
    folders = checkpoint_dirs(trained["root"] / "checkpoints")
    assert [f.name for f in folders] == ["checkpoint-1", "checkpoint-2"]
    for folder in folders:
        assert (folder / "adapter_model.safetensors").is_file() and (folder / "optimizer.pt").is_file()
        meta = json.loads((folder / CHECKPOINT_FILE).read_text())
        assert meta["step"] == int(folder.name.split("-")[1]) and meta["seed"] == 3
        assert meta["params"]["train"]["max_steps"] == 2


def test_training_logs_rewards_loss_kl_and_search_metrics_to_mlflow(trained):
    run_id = trained["summary"]["mlflow_run_id"]
    for key in [
        "train/loss",
        "train/kl",
        "train/learning_rate",
        "train/reward/total",
        "train/reward/retry",
        "train/reward/correctness",
        "train/completion_length",
        "train/searches_per_rollout",
        "train/retried_share",
        "train/correct_share",
        "train/frac_correctness_zero_std",
    ]:
        assert [s for s, _ in metric_history(trained["store"], run_id, key)] == [1, 2], key
    zero_std = [v for _, v in metric_history(trained["store"], run_id, "train/frac_correctness_zero_std")]
    # The summary reads the same history: the share of groups whose correctness varied, over all steps.
    assert trained["summary"]["correctness_varied_share"] == round(1 - sum(zero_std) / 2, 4)
    assert "last_quarter_retried_share" in trained["summary"]


def test_training_logs_a_few_rollouts_of_each_step_as_traces(trained):
    import mlflow

    mlflow.set_tracking_uri(trained["store"])
    run_id = trained["summary"]["mlflow_run_id"]
    found = mlflow.search_traces(
        locations=[mlflow.get_run(run_id).info.experiment_id],
        run_id=run_id,
        filter_string="tags.source = 'training'",
        return_type="list",
    )
    assert sorted(t.info.tags["step"] for t in found) == ["1", "1", "2", "2"]  # trace_rollouts: 2
    questions = {r["question"]: r["answer"] for r in trained["records"]}
    for trace in found:
        root = trace.data.spans[0]
        assert questions[root.inputs["question"]] == root.attributes["gold_answer"]
        assert "reward.retry" in root.attributes and trace.info.tags["correct"] in ("true", "false")


def test_lora_weights_move_and_base_weights_do_not(trained):
    from rezero.external.models import load_model

    run_id = trained["summary"]["mlflow_run_id"]
    assert max(v for _, v in metric_history(trained["store"], run_id, "train/grad_norm")) > 0
    adapter = load_file(str(trained["root"] / "checkpoints/checkpoint-2/adapter_model.safetensors"))
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it moved
    # Inference merges the adapter: base weight + (alpha / r) · B·A; training left the base weights alone.
    base = load_model(trained["setup"].train.model)
    checkpoint = trained["root"] / "checkpoints/checkpoint-2"
    merged = load_model(trained["setup"].train.model, adapter=checkpoint)
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    layer = "model.layers.0.self_attn.q_proj"
    (lora_a,) = [t for name, t in adapter.items() if f"{layer}.lora_A" in name]
    (lora_b,) = [t for name, t in adapter.items() if f"{layer}.lora_B" in name]
    base_weight = dict(base.named_parameters())[f"{layer}.weight"]
    expected = base_weight + config["lora_alpha"] / config["r"] * (lora_b @ lora_a)
    merged_weight = dict(merged.named_parameters())[f"{layer}.weight"]
    assert torch.allclose(merged_weight, expected, atol=1e-6)
    assert not torch.equal(merged_weight, base_weight)


def test_interrupted_training_resumes_from_its_last_checkpoint(trained, index_dir, tmp_path):
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import train

    copy = tmp_path / "checkpoints"
    shutil.copytree(trained["root"] / "checkpoints", copy)
    shutil.rmtree(copy / "checkpoint-2")  # killed after saving step 1
    assert latest_checkpoint(copy).name == "checkpoint-1"
    with environment(MLFLOW_TRACKING_URI=trained["store"]):
        summary = train(
            trained["setup"], trained["records"], open_retriever(index_dir), copy, trained["warmstart"]
        )
    assert summary["steps"] == 2 and (copy / "checkpoint-1").is_dir()
    assert summary["mlflow_run_id"] == trained["summary"]["mlflow_run_id"]  # the same MLflow run continues
    resumed = load_file(str(copy / "checkpoint-2/adapter_model.safetensors"))
    original = load_file(str(trained["root"] / "checkpoints/checkpoint-2/adapter_model.safetensors"))
    assert all(torch.allclose(resumed[k], original[k], atol=1e-5) for k in original)


def test_changed_configuration_starts_fresh_instead_of_resuming(trained, tmp_path):
    from dataclasses import replace

    from rezero.training.grpo import prepare_output_dir

    copy = tmp_path / "checkpoints"
    shutil.copytree(trained["root"] / "checkpoints", copy)
    same = prepare_output_dir(copy, trained["setup"])
    assert same[0].endswith("checkpoint-2") and same[1] == trained["summary"]["mlflow_run_id"]
    changed = replace(trained["setup"], data_fingerprint="other data")
    assert prepare_output_dir(copy, changed) == (None, None)
    assert not copy.exists()
    assert json.loads((trained["root"] / "checkpoints" / RUN_FILE).read_text())["mlflow_run_id"]


def test_unreachable_mlflow_server_fails_before_training(trained, index_dir, tmp_path):
    from rezero.retrieval import open_retriever
    from rezero.training.grpo import train

    with (
        environment(MLFLOW_TRACKING_URI="http://127.0.0.1:9"),
        pytest.raises(PipelineError, match=r"127\.0\.0\.1:9"),
    ):
        train(trained["setup"], trained["records"], open_retriever(index_dir), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_grpo_continues_the_warm_start_and_keeps_it_as_the_reference(trained):
    # TRL keeps a frozen copy of the adapter it continues (its "ref" adapter): the KL term then holds the
    # policy near the warm start, not near the raw model.
    warm = load_file(str(trained["warmstart"] / "adapter_model.safetensors"))
    checkpoint = trained["root"] / "checkpoints/checkpoint-2"
    reference = load_file(str(checkpoint / "ref/adapter_model.safetensors"))
    policy = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert set(reference) == set(warm) == set(policy)
    assert all(torch.equal(reference[name], warm[name]) for name in warm)
    assert any(not torch.equal(policy[name], warm[name]) for name in warm)  # GRPO moved the policy


def test_rollouts_sample_from_a_merged_copy_that_follows_the_policy(warmstarted, tokenizer):
    from rezero.external.models import MergedCopy, apply_adapter, load_model
    from tests.model.conftest import MODEL

    policy = apply_adapter(load_model(MODEL), warmstarted, trainable=True)
    base_before = {n: p.clone() for n, p in policy.named_parameters() if "lora_" not in n}
    ids = torch.tensor([tokenizer("When did oxygen tank 2 fail?")["input_ids"]])
    sampler = MergedCopy(MODEL)

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    copy = sampler.refresh(policy)
    assert "Peft" not in type(copy).__name__  # a plain model: no LoRA layers to run per token
    torch.testing.assert_close(logits(copy), logits(policy), atol=2e-4, rtol=1e-4)
    with torch.no_grad():  # an optimizer step on the adapter
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(0.01)
    moved = logits(policy)
    assert not torch.allclose(moved, logits(copy), atol=1e-3)  # stale until refreshed
    assert sampler.refresh(policy) is copy  # refreshed in place, loaded once
    # fp32 rounding of W + s·B·A grows with the update: 3.1e-4 at most on logits of ~20 here.
    torch.testing.assert_close(logits(copy), moved, atol=5e-4, rtol=1e-4)
    assert all(torch.equal(p, base_before[n]) for n, p in policy.named_parameters() if "lora_" not in n)


def test_fewer_questions_than_a_step_draws_is_refused_before_anything_starts(trained, index_dir, tmp_path):
    from dataclasses import replace

    from rezero.retrieval import open_retriever
    from rezero.training.grpo import train

    setup = trained["setup"]
    two_a_step = replace(setup, train=replace(setup.train, questions_per_step=2))
    with pytest.raises(PipelineError, match=r"GRPO draws 2 questions a step .* but 1 are available"):
        train(two_a_step, trained["records"][:1], open_retriever(index_dir), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
