# Sourced by the project's shell entry points: offline, no telemetry, the venv first on PATH.
# (Python entry points set the same through rezero.core.runtime.configure_environment.)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false
export GX_ANALYTICS_ENABLED=false TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH"
