"""A model-free command on the one runner, for tests/test_ranks.py: run it as a rank of a
launch (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment) or alone:

    python tests/rank_toy.py OUT [--resume] [--scale 2] [--die-at u2]

Units u1, u2, u3 over seven items (ids i0..i6, values 0..6): each rank takes its share with
`ctx.take`, writes a row per item (value * scale * unit number) and appends "RANK UNIT" to
OUT.calls, the record of what each rank computed. `--die-at UNIT` makes rank 1 die (exit 3,
no cleanup, like a killed process) when it reaches that unit.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plumbing import atomic_write_parquet  # noqa: E402
from plumbing.runner import (  # noqa: E402
    MAIN_TABLE,
    Command,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command,
)

ITEMS = [{"id": f"i{v}", "value": v} for v in range(7)]


@dataclass
class ToyConfig:
    out: str
    scale: int = 1
    die_at: str | None = None
    resume: bool = False
    overwrite: bool = False


def plan(cfg: ToyConfig) -> Plan:
    units = [Unit(f"u{n}", n) for n in (1, 2, 3)]
    return Plan(units, identity={"scale": cfg.scale})


def run_unit(cfg: ToyConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    import pandas as pd

    if cfg.die_at == unit.key and ctx.ranks.rank == 1:
        os._exit(3)
    share = ctx.take(ITEMS, id_of=lambda item: item["id"])
    with open(f"{cfg.out}.calls", "a", encoding="utf-8") as log:
        log.write(f"{ctx.ranks.rank} {unit.key}\n")
    # one process writes its rows in reverse (as a length-sorted batch would): order is restored
    rows = [
        {"example_id": item["id"], "unit": unit.key, "value": item["value"] * cfg.scale * unit.data}
        for item in reversed(share)
    ]
    return UnitResult({MAIN_TABLE: pd.DataFrame(rows)}, {"n_items": len(share), "kind": "toy"})


def summarise(cfg: ToyConfig, ctx: RunContext) -> dict[str, Any]:
    frame = ctx.parts.read([u.key for u in ctx.plan.units])
    atomic_write_parquet(ctx.out / "toy.parquet", frame)
    metas = {u.key: ctx.parts.meta(u.key)["n_items"] for u in ctx.plan.units}
    return {"n_rows": len(frame), "n_items": metas}


COMMAND = Command("toy", plan, run_unit, summarise)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--die-at")
    args = parser.parse_args()
    from plumbing import InputError

    try:
        run_command(COMMAND, ToyConfig(**vars(args)), progress=False)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
