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
   one write the same tables), then `manifest.json` is written last (with `world_size`).

Ranks (`torchrun` / `accelerate launch`, plumbing.ranks): every rank plans the same units and
runs every unit on its share of the unit's items: run_unit asks for them with
`ctx.take(examples)` (or `ctx.take(tasks, column="task_id", id_of=...)`), which also tells the
runner how to put rows back in the planned order. Each rank writes its own part
(`<key>@rank1of2`); after the last unit, rank 0 merges each unit's rank parts into the unit's
part (rows in planned order, metas by `plumbing.ranks.merge_meta`, tables that aggregate over
items by the command's `merge`), then summarises and writes the manifest alone. A one-process
run sorts its rows the same way, so both write identical tables. A killed launch keeps every
finished rank part; relaunching with --resume (any number of ranks for merged units, the same
number for unmerged ones) skips them.
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
from plumbing.ranks import Ranks, merge_meta
from plumbing.runs import Manifest, check_out_dir, prepare_out_dir

MAIN_TABLE = ""  # UnitResult.tables key of a unit's main table: parts/<key>.parquet
ITEM_COLUMN = "_item"  # a row's item position in its unit's planned list (rank parts only)


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

    def remove(self, key: str) -> None:
        """Drop a part (a rank's part once it is merged): its meta first, so a kill half-way
        leaves either a complete part or no part."""
        (self.dir / f"{key}.json").unlink(missing_ok=True)
        for path in [self.table_path(key), *self.dir.glob(f"{key}.*.parquet")]:
            path.unlink(missing_ok=True)

    def result(self, key: str) -> UnitResult:
        """A stored part back as a UnitResult (its tables and meta)."""
        import pandas as pd

        tables = {MAIN_TABLE: pd.read_parquet(self.table_path(key))}
        for path in sorted(self.dir.glob(f"{key}.*.parquet")):
            table = path.name[len(key) + 1 : -len(".parquet")]
            if "." not in table and "@" not in table:
                tables[table] = pd.read_parquet(path)
        return UnitResult(tables, self.meta(key))

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
    ranks: Ranks = field(default_factory=Ranks)
    order: tuple[str, dict[Any, int]] | None = None  # the current unit's (id column, positions)

    def take(
        self,
        items: Sequence[Any],
        *,
        column: str = "example_id",
        id_of: Callable[[Any], Any] = lambda item: item.id,
    ) -> list[Any]:
        """This rank's share of one unit's items (all of them in a one-process run). The rows
        of every table of the unit that has `column` are put back in the items' order."""
        positions: dict[Any, int] = {}
        for i, item in enumerate(items):
            positions.setdefault(id_of(item), i)
        self.order = (column, positions)
        return self.ranks.take(items)


@dataclass(frozen=True)
class Command:
    """A per-model command: its name (the manifest's `command`) and its three functions."""

    name: str
    plan: Callable[[Any], Plan]
    run_unit: Callable[[Any, Unit, RunContext], UnitResult]
    summarise: Callable[[Any, RunContext], dict[str, Any]]
    resume_by_default: bool = False  # continue an unfinished --out without --resume
    finish: Callable[[RunContext], None] | None = None  # release what run_unit kept (models)
    # Ranks: tables without the unit's id column (aggregates over its items) are merged here,
    # from every rank's result, into the tables (and meta entries) of the merged part; a
    # table it maps to None is dropped (a rank's working data).
    merge: Callable[[Any, Unit, list[UnitResult]], UnitResult] | None = None


def in_item_order(result: UnitResult, order: tuple[str, dict[Any, int]], keep: bool) -> None:
    """Sort every table that has the id column by its items' planned positions (stable: a
    unit's rows of one item keep their order); `keep` stores the positions as ITEM_COLUMN."""
    column, positions = order
    for name, frame in result.tables.items():
        if column in getattr(frame, "columns", ()):
            pos = frame[column].map(positions)
            frame = frame.assign(**{ITEM_COLUMN: pos.to_numpy()})
            frame = frame.sort_values(ITEM_COLUMN, kind="stable").reset_index(drop=True)
            result.tables[name] = frame if keep else frame.drop(columns=[ITEM_COLUMN])


def merge_rank_results(
    command: Command, cfg: Any, unit: Unit, results: list[UnitResult]
) -> UnitResult:
    """One unit's part from its ranks' parts (see the module docstring)."""
    import pandas as pd

    merged = command.merge(cfg, unit, results) if command.merge is not None else UnitResult()
    names = dict.fromkeys(n for r in results for n in r.tables)
    for name in names:
        if name in merged.tables:
            continue
        frames = [r.tables[name] for r in results if name in r.tables]
        if not all(ITEM_COLUMN in f.columns for f in frames if len(f.columns)):
            raise InputError(
                f"{command.name}: table {name or 'main'!r} of {unit.key} aggregates over items "
                "and the command has no merge for it: it cannot run on several ranks"
            )
        frames = [f for f in frames if len(f)]
        frame = pd.concat(frames, ignore_index=True) if frames else results[0].tables[name]
        if ITEM_COLUMN in frame.columns:
            frame = frame.sort_values(ITEM_COLUMN, kind="stable").drop(columns=[ITEM_COLUMN])
        merged.tables[name] = frame.reset_index(drop=True)
    merged.meta = {**merge_meta([r.meta for r in results]), **merged.meta}
    merged.tables = {k: v for k, v in merged.tables.items() if v is not None}
    return merged


def run_command(command: Command, cfg: Any, *, progress: bool = True) -> dict[str, Any]:
    """Plan, run every unit not yet done, summarise, write the manifest; returns its result."""
    return run_command_context(command, cfg, progress=progress).result


def run_command_context(command: Command, cfg: Any, *, progress: bool = True) -> RunContext:
    """`run_command`, returning the whole run context (its `result`, `resumed`, `state`).

    On a rank other than 0 the context comes back without a result: rank 0 summarises."""
    ranks = Ranks.from_env()
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
    manifest.extra["world_size"] = ranks.world
    ctx = RunContext(cfg=cfg, plan=plan, out=out, parts=parts, manifest=manifest, ranks=ranks)
    started = False

    def start() -> None:
        nonlocal started
        if not started:
            if ranks.is_main:
                prepare_out_dir(out, overwrite=cfg.overwrite, resume=keep)
                parts.start(plan.identity, keep=keep)
            started = True

    if ranks.active:
        # Every rank has planned (bad input fails on all of them alike) before rank 0 clears an
        # earlier run's parts; no rank writes before the store is ready.
        ranks.pin_device()
        ranks.barrier()
        start()
        ranks.barrier()

    from tqdm.auto import tqdm

    bar = tqdm(
        plan.units,
        desc=command.name,
        unit="unit",
        dynamic_ncols=True,
        leave=False,
        disable=not progress or len(plan.units) < 2 or not ranks.is_main,
    )
    try:
        for unit in bar:
            if keep and parts.done(unit):
                ctx.resumed.append(unit.key)
                continue
            key = unit.key + ranks.part_suffix()
            if keep and ranks.active and parts.done(Unit(key, tables=unit.tables)):
                continue  # this rank's share finished before the launch was stopped
            t0 = time.perf_counter()
            ctx.order = None
            result = command.run_unit(cfg, unit, ctx)
            result.meta.setdefault("seconds", round(time.perf_counter() - t0, 3))
            if ctx.order is None and ranks.active:
                raise InputError(f"{command.name}: does not split its units over ranks")
            if ctx.order is not None:
                in_item_order(result, ctx.order, keep=ranks.active)
            start()
            parts.write(key, result)
    finally:
        if command.finish is not None:
            command.finish(ctx)
    if ranks.active:
        ranks.barrier()  # every rank's parts are written
        if not ranks.is_main:
            ranks.barrier()  # rank 0 has merged, summarised and written the manifest
            return ctx
        for unit in plan.units:
            if parts.done(unit):
                continue
            rank_keys = [unit.key + Ranks(r, ranks.world).part_suffix() for r in range(ranks.world)]
            merged = merge_rank_results(command, cfg, unit, [parts.result(k) for k in rank_keys])
            parts.write(unit.key, merged)
            for k in rank_keys:
                parts.remove(k)
    start()
    with manifest.timed("summary"):
        ctx.result = command.summarise(cfg, ctx)
    manifest.finish(result=ctx.result)
    if ranks.active:
        ranks.barrier()  # the other ranks leave with the run's files complete
    return ctx
