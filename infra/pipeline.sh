#!/usr/bin/env bash
# The README's first command: set everything up, run the whole pipeline with DVC (extra args go to
# dvc repro), then print a short summary: accuracy by checkpoint, the chosen step, minutes per stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/setup.sh
source infra/env.sh
mkdir -p infra/run
dvc repro "$@" | python flows/summary.py record infra/run/stage_seconds.json
python flows/summary.py show infra/run/stage_seconds.json
