"""The one runner behind every per-model command (ppl, kl, valloss, attn, gradnorm, eval).

A command declares its science; the runner owns everything around it:

    from plumbing.runner import Command, Plan, Unit, UnitResult, run_command

    def plan(cfg) -> Plan:              # validate, list the units of work; no writes yet
        return Plan(units=[Unit("m0-precede-s0-final", data=ref)], identity=cfg.run_key())
    def run_unit(cfg, unit, ctx) -> UnitResult:     # one model (x format, x checkpoint)
        return UnitResult({"": rows_frame}, meta={"scoring_mode": "chunked"})
    def summarise(cfg, ctx) -> dict:    # final tables from the parts; returns the manifest result
        frame = ctx.parts.read([u.key for u in ctx.plan.units]); ...
        return {"n_rows": len(frame)}

    COMMAND = Command("ppl", plan, run_unit, summarise)
    run_command(COMMAND, cfg)           # cfg needs .out, .resume, .overwrite

What the runner does, in order:
1. `check_out_dir` (a finished run is refused without --overwrite/--resume), then `plan(cfg)`:
   everything that can fail on bad input fails here, before --out is touched.
2. Resume: finished units live in `<out>/parts/` (`PartStore`): `<key>.parquet` (the unit's main
   table), `<key>.<name>.parquet` (any other table) and `<key>.json` (its meta), written last, so
   a unit counts as done only when all of it is there. `parts/config.json` holds the plan's
   `identity` (the options that decide the per-unit numbers): continuing with another identity is
   refused. Whether an unfinished folder is continued without --resume is the command's choice
   (`resume_by_default`: eval does, the scoring commands start again unless told).
3. The run folder is created only when the first unit has produced its result (a model that
   cannot be read leaves nothing behind), each unit under a progress bar, timed in the manifest.
4. `summarise` builds the final tables from the parts (so a resumed run and an uninterrupted
   one write the same tables), then `manifest.json` is written last.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing.errors import InputError
from plumbing.files import atomic_path, atomic_write_json, atomic_write_parquet, to_jsonable
from plumbing.runs import Manifest, check_out_dir, prepare_out_dir

MAIN_TABLE = ""  # UnitResult.tables key of a unit's main table: parts/<key>.parquet


@dataclass
class Unit:
    """One unit of work (one model, one model x format, one checkpoint, ...)."""

    key: str  # stable and filesystem-safe: the part's file name
    data: Any = None  # what run_unit needs (a ModelRef, a format, ...)
    tables: tuple[str, ...] = ()  # extra tables a finished part must hold (else it is rerun)


@dataclass
class Plan:
    """What `plan(cfg)` returns: the units and what identifies their numbers."""

    units: list[Unit]
    identity: dict[str, Any]  # must match on resume (parts/config.json)
    context: Any = None  # shared by every unit: example caches, a base model's ref, ...


@dataclass
class UnitResult:
    """What one unit produced: tables (MAIN_TABLE and named extras) and a JSON-able meta."""

    tables: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # other files, by path under --out


def run_identity(cfg: Any, *ignore: str) -> dict[str, Any]:
    """A config's fields that decide the per-unit numbers: all but where and how the run is
    written (out, resume, overwrite) and the `ignore`d ones (e.g. summary statistics, which are
    rebuilt from the parts on every run)."""
    skip = {"out", "resume", "overwrite", *ignore}
    return {k: v for k, v in vars(cfg).items() if k not in skip}


def safe_key(*parts: str) -> str:
    """A filesystem-safe, stable part key from its pieces."""
    raw = "-".join(p for p in parts if p)
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in raw)


class PartStore:
    """Finished units under `<out>/parts/` (see the module docstring)."""

    def __init__(self, out: str | Path):
        self.dir = Path(out) / "parts"

    # -- identity -------------------------------------------------------------------------------

    def check_identity(self, identity: dict[str, Any], out: Path) -> None:
        """Refuse to continue a run whose identity differs (read-only)."""
        key_file = self.dir / "config.json"
        if not key_file.exists():
            return
        old = json.loads(key_file.read_text(encoding="utf-8"))
        new = to_jsonable(identity)
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise InputError(
                f"--out {out}: holds a run with other settings ({', '.join(changed)}): options "
                "changed since it was started; use another --out or --overwrite to start again"
            )

    def start(self, identity: dict[str, Any], keep: bool) -> None:
        """Create the store; without `keep` the parts of an earlier run are removed first."""
        if not keep and self.dir.exists():
            shutil.rmtree(self.dir)  # never mix in parts of another run
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "config.json", identity)

    # -- parts ----------------------------------------------------------------------------------

    def table_path(self, key: str, table: str = MAIN_TABLE) -> Path:
        return self.dir / (f"{key}.parquet" if table == MAIN_TABLE else f"{key}.{table}.parquet")

    def done(self, unit: Unit) -> bool:
        """Its meta (written last) is there, its main table and every extra one it needs (a part
        whose table was lost is run again)."""
        tables = (self.table_path(unit.key, t).exists() for t in (MAIN_TABLE, *unit.tables))
        return (self.dir / f"{unit.key}.json").exists() and all(tables)

    def write(self, key: str, result: UnitResult) -> None:
        """Its files and tables first, the meta (the done marker) last; every unit has a main
        table (maybe empty)."""
        import pandas as pd

        result.tables.setdefault(MAIN_TABLE, pd.DataFrame())
        for rel, data in result.files.items():
            with atomic_path(self.dir.parent / rel) as tmp:
                tmp.write_bytes(data)
        for table, frame in result.tables.items():
            atomic_write_parquet(self.table_path(key, table), frame)
        atomic_write_json(self.dir / f"{key}.json", result.meta)

    def meta(self, key: str) -> dict[str, Any]:
        path = self.dir / f"{key}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def read(self, keys: Sequence[str], table: str = MAIN_TABLE) -> Any:
        """The concatenated table of these units (units without it are left out)."""
        import pandas as pd

        paths = [self.table_path(k, table) for k in keys]
        frames = [pd.read_parquet(p) for p in paths if p.exists()]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class RunContext:
    """What run_unit and summarise see of the run."""

    cfg: Any
    plan: Plan
    out: Path
    parts: PartStore
    manifest: Manifest
    resumed: list[str] = field(default_factory=list)  # keys found done, not run again
    state: dict[str, Any] = field(default_factory=dict)  # run_unit's cache across units
    result: dict[str, Any] = field(default_factory=dict)  # what summarise returned


@dataclass(frozen=True)
class Command:
    """A per-model command: its name (the manifest's `command`) and its three functions."""

    name: str
    plan: Callable[[Any], Plan]
    run_unit: Callable[[Any, Unit, RunContext], UnitResult]
    summarise: Callable[[Any, RunContext], dict[str, Any]]
    resume_by_default: bool = False  # continue an unfinished --out without --resume
    finish: Callable[[RunContext], None] | None = None  # release what run_unit kept (models)


def run_command(command: Command, cfg: Any, *, progress: bool = True) -> dict[str, Any]:
    """Plan, run every unit not yet done, summarise, write the manifest; returns its result."""
    return run_command_context(command, cfg, progress=progress).result


def run_command_context(command: Command, cfg: Any, *, progress: bool = True) -> RunContext:
    """`run_command`, returning the whole run context (its `result`, `resumed`, `state`)."""
    out = check_out_dir(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)
    plan = command.plan(cfg)
    keys = [u.key for u in plan.units]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"{command.name}: two units of work share the key {dup!r}")
    parts = PartStore(out)
    keep = (cfg.resume or command.resume_by_default) and not cfg.overwrite
    if keep:
        parts.check_identity(plan.identity, out)
    manifest = Manifest(command.name, out, config=cfg)
    ctx = RunContext(cfg=cfg, plan=plan, out=out, parts=parts, manifest=manifest)
    started = False

    def start() -> None:
        nonlocal started
        if not started:
            prepare_out_dir(out, overwrite=cfg.overwrite, resume=keep)
            parts.start(plan.identity, keep=keep)
            started = True

    from tqdm.auto import tqdm

    bar = tqdm(
        plan.units,
        desc=command.name,
        unit="unit",
        dynamic_ncols=True,
        leave=False,
        disable=not progress or len(plan.units) < 2,
    )
    try:
        for unit in bar:
            if keep and parts.done(unit):
                ctx.resumed.append(unit.key)
                continue
            t0 = time.perf_counter()
            result = command.run_unit(cfg, unit, ctx)
            result.meta.setdefault("seconds", round(time.perf_counter() - t0, 3))
            start()
            parts.write(unit.key, result)
    finally:
        if command.finish is not None:
            command.finish(ctx)
    start()
    with manifest.timed("summary"):
        ctx.result = command.summarise(cfg, ctx)
    manifest.finish(result=ctx.result)
    return ctx
