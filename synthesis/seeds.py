"""A Seed: what a source yields before the teacher sees it (one instruction-data row, one function
from a source tree, or one procedurally generated toy task)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seed:
    id: str  # stable across runs: resuming skips seeds whose id is already finished
    code: str  # the code snippet the teacher turns into a task (or the reference answer)
    instruction: str | None = None  # the source's natural-language task; None for raw code
    seed_answer: str | None = None  # the source's original answer (the Seed format renders it)
    entry_point: str | None = None
    source: str = ""  # "toy", "jsonl:PATH", "parquet:PATH", "hf:DIR", "pysrc:DIR"
    meta: dict[str, Any] = field(default_factory=dict)  # family, difficulty, split, ...
