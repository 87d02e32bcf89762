"""On-disk indexes for the front stages of `diag synth`, so memory stays flat with input size.

    from synthesis.index import open_index, KeyIndex, SeedSpool
    db = open_index()                          # a private temporary sqlite file (deleted on close)
    db = open_index(run_dir / ".front.sqlite")   # or a file of the run folder (recreated)
    ids = KeyIndex(db, "ids")
    ids.add("jsonl:a.jsonl:3", "jsonl:a.jsonl")  # None (new), else the value stored first
    spool = SeedSpool(db, "passed")
    spool.append(seed); len(spool); for seed in spool: ...   # in append order, re-iterable
    finished = IdSet(["a", "b"]); finished.add("c"); "a" in finished   # thread-safe, own file

Everything the front stages remember about earlier candidates (ids seen, exact-duplicate
digests, MinHash LSH band keys, the candidates' order, the seeds that passed) grows with the
input, so it lives in sqlite tables rather than Python dicts: sqlite keeps a bounded page cache
(CACHE_KIB) in memory and the rest on disk. The same goes for the ids a run has finished
(IdSet), which the teacher loop and the sandbox thread share. The file is scratch: no journal, no fsync, one open
transaction; a killed run leaves it behind and the next attempt recreates it (the front stages
are recomputed on resume anyway, see synthesis.pipeline).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from synthesis.seeds import Seed

# sqlite's page cache per connection: what the indexes may hold in memory
CACHE_KIB = 4 * 1024
# rows fetched per step when iterating a table (bounded memory, few round trips)
FETCH = 1024


def open_index(path: str | Path | None = None) -> sqlite3.Connection:
    """A scratch sqlite database: `path` (an old file there is replaced) or, when None, a
    private temporary file that sqlite deletes when the connection closes."""
    if path is not None:
        Path(path).unlink(missing_ok=True)
    # check_same_thread off: the pipeline's sandbox thread never touches it, but a connection
    # made in one thread and closed from a finalizer in another must not raise
    db = sqlite3.connect("" if path is None else str(path), check_same_thread=False)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    db.execute("PRAGMA temp_store = FILE")
    return db


class KeyIndex:
    """A set of keys (str or bytes) on disk, each with the value it was first added with."""

    def __init__(self, db: sqlite3.Connection, name: str):
        self.db, self.name = db, name
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (key PRIMARY KEY, value TEXT) WITHOUT ROWID")

    def add(self, key: str | bytes, value: str) -> str | None:
        """Add `key` with `value`; when the key is already there, return its first value."""
        cur = self.db.execute(f"INSERT OR IGNORE INTO {self.name} VALUES (?, ?)", (key, value))
        if cur.rowcount:
            return None
        return self.get(key)

    def put(self, key: str | bytes, value: str) -> None:
        """Set `key` to `value` (the last put wins)."""
        self.db.execute(f"INSERT OR REPLACE INTO {self.name} VALUES (?, ?)", (key, value))

    def get(self, key: str | bytes) -> str | None:
        row = self.db.execute(f"SELECT value FROM {self.name} WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]


class IdOrder(Protocol):
    """Ids in source order that can be counted and read once (IdSpool, a list, a table)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[str]: ...


class Spool:
    """An append-only list of JSON values on disk, re-iterable in append order."""

    def __init__(self, db: sqlite3.Connection, name: str):
        self.db, self.name = db, name
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (pos INTEGER PRIMARY KEY, item TEXT)")
        self._len = db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]

    def append_json(self, item: object) -> None:
        self.db.execute(
            f"INSERT INTO {self.name} (item) VALUES (?)", (json.dumps(item, ensure_ascii=False),)
        )
        self._len += 1

    def __len__(self) -> int:
        return self._len

    def iter_json(self) -> Iterator[object]:
        # a cursor of its own, so two iterations (or an iteration and appends) do not interfere
        cur = self.db.execute(f"SELECT item FROM {self.name} ORDER BY pos")
        while rows := cur.fetchmany(FETCH):
            for (item,) in rows:
                yield json.loads(item)


class IdSpool(Spool):
    """Candidate ids in source order (what compute_stats and the final ordering read)."""

    def append(self, seed_id: str) -> None:
        self.append_json(seed_id)

    def __iter__(self) -> Iterator[str]:
        return self.iter_json()  # type: ignore[return-value]


class SeedSpool(Spool):
    """Seeds (synthesis.seeds.Seed) in append order."""

    def append(self, seed: Seed) -> None:
        self.append_json(asdict(seed))

    def __iter__(self) -> Iterator[Seed]:
        for item in self.iter_json():
            yield Seed(**item)  # type: ignore[arg-type]


class IdSet:
    """A set of ids on disk, in a private temporary sqlite file of its own (deleted on close).

    Two threads may use it (the synthesis loop asks, its sandbox thread adds): every call holds
    the set's lock, and no other table shares its connection."""

    def __init__(self, ids: Iterable[str] = ()):
        self._db = open_index()
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._lock = threading.Lock()
        self.update(ids)

    def add(self, seed_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (seed_id,))

    def update(self, ids: Iterable[str]) -> None:
        iterator = iter(ids)
        while chunk := list(itertools.islice(iterator, FETCH)):
            with self._lock:
                self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((i,) for i in chunk))

    def __contains__(self, seed_id: object) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM ids WHERE id = ?", (seed_id,)).fetchone()
        return found is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM ids").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
