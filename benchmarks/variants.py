"""ReZero against the no-retry baseline over seeds, rebuilt from the files the runs left: the results table.

Reads a folder of finished runs (`docs/results/<experiment>/<variant>-seed<seed>/summary.json` and
`outcomes.jsonl`, written by `python flows/compare.py`, or by `rezero.evaluation.comparison.save_run` after a
`dvc exp run`) and prints the table (rezero/evaluation/comparison.py): per variant the dev-chosen checkpoint's
test accuracy over seeds with its interval, against step 0, retry share and searches in evaluation and in the
training rollouts' last quarter; then ReZero minus the baseline, paired by seed and question. `--json` also
writes the numbers.

    python benchmarks/variants.py docs/results/dec07 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rezero.core.errors import PipelineError
from rezero.evaluation import comparison


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="folder of run folders (<variant>-seed<seed>/)")
    parser.add_argument("--json", type=Path, help="also write the comparison as JSON here")
    args = parser.parse_args()
    try:
        table = comparison.compare(comparison.load_runs(args.results))
    except PipelineError as err:
        raise SystemExit(f"variants: error: {err}") from None
    print(comparison.markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
