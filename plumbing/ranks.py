"""Data parallel over ranks: which share of the work this process does, and when to wait.

Under `torchrun` or `accelerate launch` every process has RANK, WORLD_SIZE and LOCAL_RANK (and
MASTER_ADDR / MASTER_PORT); without them a process is rank 0 of 1 and nothing here costs a thing.

    ranks = Ranks.from_env()            # rank 1 of 2 under `torchrun --nproc-per-node 2`
    mine = ranks.take(examples)         # items rank, rank + world, ...: strided, so long and
                                        # short examples spread evenly over the ranks
    ranks.barrier()                     # gloo on CPU tensors: works beside NCCL jobs too

The rule that decides a rank's share is `items[rank::world]` over the unit's items in their
planned order (every rank plans the same list): deterministic, uneven counts are fine (with 7
examples on 2 ranks, rank 0 has 4 and rank 1 has 3).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from plumbing.errors import InputError

T = TypeVar("T")

# A rank waits at a barrier for the slowest one; the shards are balanced, but one unit of a big
# model on a slow device can take hours, and gloo's default timeout (30 min) would kill the run.
BARRIER_TIMEOUT = _dt.timedelta(hours=24)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment variable {name}={raw!r}: not an integer") from None


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one launch."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """RANK / WORLD_SIZE / LOCAL_RANK as torchrun and accelerate set them (else 0 of 1)."""
        world = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        local = _env_int("LOCAL_RANK", rank)
        if world < 1:
            raise InputError(f"environment variable WORLD_SIZE={world}: must be at least 1")
        if not 0 <= rank < world:
            raise InputError(
                f"environment variable RANK={rank}: must be in [0, WORLD_SIZE={world})"
            )
        return cls(rank=rank, world=world, local_rank=local)

    @property
    def active(self) -> bool:
        """Several processes share the work."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that merges the parts and writes the summaries and the manifest."""
        return self.rank == 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's share of `items`: every world-th item, starting at its rank."""
        return list(items)[self.rank :: self.world]

    def part_suffix(self) -> str:
        """What a rank's part key carries (empty for a single process)."""
        return f"@rank{self.rank}of{self.world}" if self.active else ""

    def pin_device(self) -> None:
        """Make `cuda` mean this rank's GPU (LOCAL_RANK), so a plain `--device cuda` (or the
        default) puts each rank's models on its own device."""
        if not self.active:
            return
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            torch.cuda.set_device(self.local_rank % torch.cuda.device_count())

    def barrier(self) -> None:
        """Wait until every rank got here. The process group is opened on first use and kept
        for the life of the process (several commands in one process share it: gloo cannot be
        opened again once closed), closed when the process exits."""
        if not self.active:
            return
        import atexit

        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(
                "gloo", rank=self.rank, world_size=self.world, timeout=BARRIER_TIMEOUT
            )
            atexit.register(_close_group)
        dist.barrier()


def _close_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def merge_meta(metas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One unit's meta from its ranks' metas: a value every rank agrees on is kept, numbers that
    differ are summed (counts, seconds of compute, rates of parallel workers), dicts are merged
    key by key, anything else keeps every rank's value in a list."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for m in metas for k in m):
        values = [m[key] for m in metas if key in m]
        merged[key] = _merge_values(values)
    return merged


def _merge_values(values: list[Any]) -> Any:
    if all(v == values[0] for v in values[1:]):
        return values[0]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        total = sum(values)
        return round(total, 6) if isinstance(total, float) else total
    if all(isinstance(v, dict) for v in values):
        return merge_meta(values)
    return values
