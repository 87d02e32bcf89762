"""Run several `diag` commands, one after the other, in each process of a multi-rank launch
(tests/test_ranks.py), so one launch pays the processes' start-up once:

    accelerate launch --num_processes 2 tests/rank_driver.py CALLS.json

CALLS.json: a JSON list of argv lists, each `diag`'s arguments (["ppl", "--model", ...]).
A command that fails stops the driver with its exit code (an InputError exits 2, as in `diag`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.main import console_app  # noqa: E402
from plumbing import InputError  # noqa: E402


def main(calls_file: str) -> int:
    for argv in json.loads(Path(calls_file).read_text(encoding="utf-8")):
        try:
            console_app()(argv, standalone_mode=False)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
