"""`diag synth --merge DIR ... --out OUT`: join the folders of `--shard I/N` runs into one run.

    from synthesis.merge import merge_shards
    stats = merge_shards(["runs/s0", "runs/s1"], "runs/all")      # shards 0/2 and 1/2

    diag synth --source toy --n 2000 --shard 0/2 --out runs/s0      # two processes or machines
    diag synth --source toy --n 2000 --shard 1/2 --out runs/s1
    diag synth --merge runs/s0 --merge runs/s1 --out runs/all

Refused (InputError, exit 2, OUT untouched): a folder that is no finished shard run, folders of
different runs (their run_config.json differs apart from the shard) or of different N, the same
shard twice, a shard of 0..N-1 missing, an id in two shards, an OUT holding something (without
--overwrite) or named among the shards.

The merged folder is what the unsharded run over the same sources would have written:
    dedup      each shard removes only exact duplicates within itself; the merge redoes exact
               and near-duplicate removal (synthesis.dedup.Deduplicator, the shards' settings)
               over every candidate that reached the dedup stage in any shard, in the order of
               the whole source stream (candidates.jsonl's `pos`): the first seen wins.
               Decontamination is per seed, so the shards' decisions stand.
    outcomes   a candidate the merged dedup keeps has the outcome its shard gave it (kept,
               contaminated, teacher/parse/sandbox rejection)
    splits     per-id hashes (synthesis.pipeline.split_of): the shards' triples keep theirs
    stats      recomputed from the merged files (synthesis.pipeline.compute_stats): counts per
               stage and reason are the shards' summed, with the merge's dedup applied
    order      triples.jsonl and rejected.jsonl in source order; responses.jsonl the shards'
               answers one after another
    identity   run_config.json is the shards' with "shard" null (resumable as an unsharded run);
               manifest.json and stats.json["merge"] name the shards merged

Memory stays flat with the number of candidates: what the merge remembers lives in one scratch
sqlite database (synthesis.index.open_index: a private temporary file, deleted on close, never
in the merged folder): every shard's candidates (source position, id, shard, the byte offset of
the candidate's line when it carries code) and each id's outcome (kept or not, the byte offset
of its record in the shard's triples.jsonl or rejected.jsonl: records are not copied), plus the
Deduplicator's tables and compute_stats' index. The merged files are written in one pass over
the candidates ordered by `pos` (an index, read in chunks), each record read back from its
shard at its offset. bench/bench_synth.py part 4 measures it.

Why this equals the unsharded run: a shard removes only exact duplicates (synthesis.pipeline),
and a seed dropped as an exact duplicate of a shard-mate is dropped by the global pass too (same
normalized code: same digest, same MinHash), so every seed the global pass keeps reached the
teacher in its shard; near duplicates across and within shards are the merge's, decided over
the same seeds in the same order as the unsharded run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from plumbing import (
    InputError,
    Manifest,
    atomic_dir,
    atomic_write_json,
    check_out_dir,
    iter_jsonl,
    read_manifest,
    require_file,
)
from synthesis.dedup import Deduplicator
from synthesis.filters import Rejection
from synthesis.index import FETCH, open_index
from synthesis.pipeline import (
    CANDIDATES,
    REJECTED,
    RESPONSES,
    RUN_CONFIG,
    STATS,
    TRIPLES,
    _reject,
    _split_counts,
    compute_stats,
)


@dataclass
class _Shard:
    folder: Path
    identity: dict[str, Any]
    index: int
    count: int
    stats: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.folder} ({self.index}/{self.count})"


def _open_shard(folder: Path) -> _Shard:
    """A finished --shard run folder, read-only."""
    config_path = folder / RUN_CONFIG
    if not config_path.is_file():
        raise InputError(f"--merge {folder}: no {RUN_CONFIG} (not a diag synth run folder)")
    identity = json.loads(config_path.read_text(encoding="utf-8"))
    shard = identity.get("shard")
    if not shard:
        raise InputError(f"--merge {folder}: not a --shard run (its {RUN_CONFIG} has no shard)")
    manifest = read_manifest(folder)
    stats_path = folder / STATS
    if manifest is None or manifest.get("status") != "finished" or not stats_path.is_file():
        raise InputError(f"--merge {folder}: the shard run is not finished (resume it first)")
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    if stats.get("unfinished"):
        raise InputError(
            f"--merge {folder}: {stats['unfinished']} seeds unfinished (resume the shard first)"
        )
    return _Shard(folder, identity, shard["index"], shard["count"], stats)


def _check_shards(shards: list[_Shard]) -> None:
    """One run, one N, each shard 0..N-1 exactly once."""
    labels = ", ".join(s.label for s in shards)
    counts = {s.count for s in shards}
    if len(counts) > 1:
        raise InputError(f"--merge {labels}: shards of different N")
    first = shards[0]
    for other in shards[1:]:
        # the shard dict holds I, N, how units were cut and the dedup settings: all must agree
        # apart from I (a shard made before shards were cut by unit has no "by": never mixed)
        differ = [
            key
            for key in sorted(set(first.identity) | set(other.identity))
            if key != "shard" and first.identity.get(key) != other.identity.get(key)
        ]
        if {**first.identity["shard"], "index": 0} != {**other.identity["shard"], "index": 0}:
            differ.append(
                "dedup settings"
                if first.identity["shard"].get("by") == other.identity["shard"].get("by")
                else "shard cut (by unit since 2026-12-05; rerun the older shards)"
            )
        if differ:
            raise InputError(
                f"--merge {first.folder}, {other.folder}: not shards of one run "
                f"(other {', '.join(differ)})"
            )
    by_index: dict[int, _Shard] = {}
    for shard in shards:
        if shard.index in by_index:
            raise InputError(
                f"--merge {by_index[shard.index].folder}, {shard.folder}: both are shard "
                f"{shard.index}/{shard.count}"
            )
        by_index[shard.index] = shard
    count = first.count
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        raise InputError(f"--merge {labels}: shard {', '.join(missing)} missing")


def _records_at(path: Path) -> Iterator[tuple[str, dict[str, Any], int]]:
    """("FILE:LINE", record, byte offset of its line) per record of a shard's jsonl file, with
    iter_jsonl's checks and messages; the offset lets the merge read the record again when it
    writes it instead of holding it."""
    require_file(path, "--merge")
    with path.open("rb") as raw:
        lineno, offset = 0, 0
        for where, record in iter_jsonl(path, what="--merge"):
            # iter_jsonl skips blank lines only: advance the raw file to the same line
            target = int(where.rsplit(":", 1)[1])
            while lineno < target:
                start, line = offset, raw.readline()
                offset, lineno = offset + len(line), lineno + 1
            yield where, record, start


def _index_shards(db: sqlite3.Connection, shards: list[_Shard]) -> None:
    """Every shard's candidates (source position, where its code is) and outcomes (kept or
    not, where the record is) into `db`; refuses an id in two shards or without an outcome."""
    db.execute(
        "CREATE TABLE merge_outcome (shard INTEGER, id TEXT, kept INTEGER, at INTEGER, "
        "PRIMARY KEY (shard, id)) WITHOUT ROWID"
    )
    # seq (the rowid) breaks ties of pos in reading order, as a stable sort would
    db.execute(
        "CREATE TABLE merge_candidate (seq INTEGER PRIMARY KEY, pos INTEGER, id TEXT UNIQUE, "
        "shard INTEGER, code_at INTEGER)"
    )
    for number, shard in enumerate(shards):
        for name, kept in ((TRIPLES, 1), (REJECTED, 0)):
            # a record repeated by a resumed attempt: the last one is the outcome
            db.executemany(
                "INSERT OR REPLACE INTO merge_outcome VALUES (?, ?, ?, ?)",
                ((number, record["id"], kept, at)
                 for _, record, at in _records_at(shard.folder / name)),
            )  # fmt: skip
        for where, row, at in _records_at(shard.folder / CANDIDATES):
            seed_id = row["id"]
            code_at = at if "code" in row else None
            added = db.execute(
                "INSERT OR IGNORE INTO merge_candidate (pos, id, shard, code_at) "
                "VALUES (?, ?, ?, ?)",
                (row["pos"], seed_id, number, code_at),
            ).rowcount
            if not added:
                (first,) = db.execute(
                    "SELECT shard FROM merge_candidate WHERE id = ?", (seed_id,)
                ).fetchone()
                raise InputError(
                    f"--merge {shards[first].folder}, {shard.folder}: id {seed_id!r} is in both"
                )
            known = db.execute(
                "SELECT 1 FROM merge_outcome WHERE shard = ? AND id = ?", (number, seed_id)
            ).fetchone()
            if known is None:
                raise InputError(f"{where}: id {seed_id!r} has no outcome in {shard.folder}")
    db.execute("CREATE INDEX merge_candidate_pos ON merge_candidate (pos)")


class _SourceOrder:
    """The merged candidates' ids in source order, read from `db` (what compute_stats counts)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM merge_candidate").fetchone()[0]

    def __iter__(self) -> Iterator[str]:
        cur = self.db.execute("SELECT id FROM merge_candidate ORDER BY pos, seq")
        while rows := cur.fetchmany(FETCH):
            for (seed_id,) in rows:
                yield seed_id


class _LineReader:
    """Reads the JSON line at a byte offset of a shard's file (each file opened once)."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.handles: dict[Path, BinaryIO] = {}

    def at(self, path: Path, offset: int) -> dict[str, Any]:
        handle = self.handles.get(path)
        if handle is None:
            handle = self.handles[path] = self.stack.enter_context(path.open("rb"))
        handle.seek(offset)
        return json.loads(handle.readline())


def _write_merged(
    db: sqlite3.Connection,
    shards: list[_Shard],
    out: Path,
    near_dup_threshold: float | None,
    dedup: bool,
) -> None:
    """triples.jsonl and rejected.jsonl of the merged run into `out`: the candidates in source
    order, each with its shard's outcome unless the merged dedup rejects it."""
    deduplicator = Deduplicator(near_dup_threshold, db=db) if dedup else None
    cur = db.execute(
        "SELECT c.id, c.shard, c.code_at, o.kept, o.at FROM merge_candidate c "
        "JOIN merge_outcome o ON o.shard = c.shard AND o.id = c.id ORDER BY c.pos, c.seq"
    )
    with contextlib.ExitStack() as stack:
        lines = _LineReader(stack)
        kept_out = stack.enter_context((out / TRIPLES).open("w", encoding="utf-8"))
        rejected_out = stack.enter_context((out / REJECTED).open("w", encoding="utf-8"))
        while rows := cur.fetchmany(FETCH):
            for seed_id, number, code_at, kept, at in rows:
                folder = shards[number].folder
                record = lines.at(folder / (TRIPLES if kept else REJECTED), at)
                if deduplicator is not None and code_at is not None:
                    code = lines.at(folder / CANDIDATES, code_at)["code"]
                    rejection: Rejection | None = deduplicator.check(seed_id, code)
                    if rejection is not None:
                        record, kept = _reject(seed_id, "dedup", rejection, record["source"]), 0
                line = json.dumps(record, ensure_ascii=False) + "\n"
                (kept_out if kept else rejected_out).write(line)


def merge_shards(dirs: list[str], out: str, *, overwrite: bool = False) -> dict[str, Any]:
    """Join the finished shard runs in `dirs` into `out`; returns the merged stats.json."""
    folders = [Path(d) for d in dirs]
    target = Path(out)
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"--merge {folder}: no such folder")
        if target.exists() and folder.resolve() == target.resolve():
            raise InputError(f"--out {target}: is one of the --merge shards")
    check_out_dir(target, overwrite=overwrite)
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InputError(f"--out {target}: not empty (pass --overwrite to replace it)")
    shards = [_open_shard(folder) for folder in folders]
    _check_shards(shards)
    shards.sort(key=lambda s: s.index)
    settings = shards[0].identity["shard"]
    # scratch: a private temporary file that sqlite deletes on close, never in the merged folder
    db = open_index()
    try:
        _index_shards(db, shards)
        return _write_run(db, shards, dirs, out, target, settings)
    finally:
        db.close()


def _write_run(
    db: sqlite3.Connection,
    shards: list[_Shard],
    dirs: list[str],
    out: str,
    target: Path,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The merged run folder (atomic), from the shards indexed in `db`; returns its stats."""
    identity = {**shards[0].identity, "shard": None}
    merged = {
        "count": shards[0].count,
        "shards": [
            {
                "dir": str(s.folder),
                "shard": f"{s.index}/{s.count}",
                "kept": s.stats["kept"],
                "candidates": s.stats["candidates"],
            }
            for s in shards
        ],  # fmt: skip
    }
    with atomic_dir(target) as tmp:
        _write_merged(db, shards, tmp, settings["near_dup_threshold"], settings["dedup"])
        with (tmp / RESPONSES).open("wb") as joined:
            for shard in shards:
                if (shard.folder / RESPONSES).is_file():
                    with (shard.folder / RESPONSES).open("rb") as part:
                        shutil.copyfileobj(part, joined)
        atomic_write_json(tmp / RUN_CONFIG, identity)
        stats = compute_stats(tmp, _SourceOrder(db), db)
        stats.update(splits=_split_counts(tmp), sources=shards[0].stats.get("sources"))
        stats["merge"] = merged
        atomic_write_json(tmp / STATS, stats)
        manifest = Manifest("synth", tmp, config={"merge": dirs, "out": out}, seed=identity["seed"])
        manifest.finish(
            outputs={"triples": TRIPLES, "rejected": REJECTED, "responses": RESPONSES,
                     "stats": STATS},
            summary={"kept": stats["kept"], "seeds": stats["seeds"],
                     "keep_rate": stats["keep_rate"]},
            merged=merged,
            teacher=(read_manifest(shards[0].folder) or {}).get("teacher"),
        )  # fmt: skip
    return stats
