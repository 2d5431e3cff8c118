#!/usr/bin/env bash
# The README's first command: set everything up, then run the whole pipeline with DVC (extra args go to dvc repro).
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/setup.sh
source infra/env.sh
dvc repro "$@"
dvc metrics show
