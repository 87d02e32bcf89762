"""Steps for tests/test_demo_schedule.py: module-level (so a spawned demo step can unpickle them)
and cheap. Each records when it ran and the threads it was given, then marks its folder finished
the way every command does (manifest.json with status "finished")."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from plumbing import InputError


def record(out: str, seconds: float, torch_threads: bool = False) -> None:
    start = time.time()
    time.sleep(seconds)
    Path(out).mkdir(parents=True, exist_ok=True)
    facts = {"start": start, "end": time.time(), "omp": os.environ.get("OMP_NUM_THREADS")}
    facts["pid"] = os.getpid()
    if torch_threads:  # what torch makes of the environment the demo gave the step
        import torch

        facts["torch_threads"] = torch.get_num_threads()
    (Path(out) / "ran.json").write_text(json.dumps(facts))
    (Path(out) / "manifest.json").write_text(json.dumps({"status": "finished"}))
    print(f"step {out} ran")


def fail(out: str) -> None:
    print("about to fail")
    raise ValueError(f"step {out} broke")


def bad_input(out: str) -> None:
    raise InputError(f"{out}/x.jsonl:3: field 'code' missing")
