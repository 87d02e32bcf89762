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

Why this equals the unsharded run: a shard removes only exact duplicates (synthesis.pipeline),
and a seed dropped as an exact duplicate of a shard-mate is dropped by the global pass too (same
normalized code: same digest, same MinHash), so every seed the global pass keeps reached the
teacher in its shard; near duplicates across and within shards are the merge's, decided over
the same seeds in the same order as the unsharded run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import (
    InputError,
    Manifest,
    atomic_dir,
    atomic_write_json,
    check_out_dir,
    iter_jsonl,
    read_manifest,
)
from synthesis.dedup import Deduplicator
from synthesis.filters import Rejection
from synthesis.pipeline import (
    CANDIDATES,
    REJECTED,
    RESPONSES,
    RUN_CONFIG,
    STATS,
    TRIPLES,
    _reject,
    _rewrite_jsonl,
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
    # filled by _read_outcomes
    outcomes: dict[str, tuple[bool, dict[str, Any]]] = field(default_factory=dict)

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
        # the shard dict holds I, N and the dedup settings: those must agree apart from I
        differ = [
            key
            for key in sorted(set(first.identity) | set(other.identity))
            if key != "shard" and first.identity.get(key) != other.identity.get(key)
        ]
        if {**first.identity["shard"], "index": 0} != {**other.identity["shard"], "index": 0}:
            differ.append("dedup settings")
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


def _read_outcomes(shard: _Shard) -> None:
    for name, kept in ((TRIPLES, True), (REJECTED, False)):
        for _, record in iter_jsonl(shard.folder / name, what="--merge"):
            shard.outcomes[record["id"]] = (kept, record)


def _join(
    shards: list[_Shard], near_dup_threshold: float | None, dedup: bool
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(ids in source order, triples, rejections) of the merged run."""
    pos: dict[str, int] = {}
    code: dict[str, str] = {}
    owner: dict[str, _Shard] = {}
    for shard in shards:
        _read_outcomes(shard)
        for where, row in iter_jsonl(shard.folder / CANDIDATES, what="--merge"):
            seed_id = row["id"]
            if seed_id in owner:
                raise InputError(
                    f"--merge {owner[seed_id].folder}, {shard.folder}: id {seed_id!r} is in both"
                )
            if seed_id not in shard.outcomes:
                raise InputError(f"{where}: id {seed_id!r} has no outcome in {shard.folder}")
            owner[seed_id], pos[seed_id] = shard, row["pos"]
            if "code" in row:
                code[seed_id] = row["code"]
    order = sorted(pos, key=pos.__getitem__)
    deduplicator = Deduplicator(near_dup_threshold) if dedup else None
    triples: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for seed_id in order:
        kept, record = owner[seed_id].outcomes[seed_id]
        if deduplicator is not None and seed_id in code:
            rejection: Rejection | None = deduplicator.check(seed_id, code[seed_id])
            if rejection is not None:
                rejected.append(_reject(seed_id, "dedup", rejection, record["source"]))
                continue
        (triples if kept else rejected).append(record)
    return order, triples, rejected


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
    order, triples, rejected = _join(shards, settings["near_dup_threshold"], settings["dedup"])
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
        _rewrite_jsonl(tmp / TRIPLES, triples)
        _rewrite_jsonl(tmp / REJECTED, rejected)
        with (tmp / RESPONSES).open("wb") as joined:
            for shard in shards:
                if (shard.folder / RESPONSES).is_file():
                    with (shard.folder / RESPONSES).open("rb") as part:
                        shutil.copyfileobj(part, joined)
        atomic_write_json(tmp / RUN_CONFIG, identity)
        stats = compute_stats(tmp, order)
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
