"""Atomic writes and reading user files: results never appear half-written.

Each file is written to a temporary name in the same folder and renamed into place (`atomic_path`,
`atomic_write_*`, `atomic_dir`); `iter_jsonl` and `require_file` read a user's input and name the
file and line of anything wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from plumbing.errors import InputError

# ---------------------------------------------------------------------------------------------
# atomic writes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_write_parquet(path: str | Path, frame: Any) -> Path:
    """Write a pandas DataFrame (or a list of dict rows) to parquet atomically."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, numpy scalars and sets to plain JSON values."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj


def iter_jsonl(
    path: str | Path, what: str = "file", on_error: Callable[[InputError], None] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", object) per non-empty line of a .jsonl (or .jsonl.gz).

    A line that is not UTF-8, not JSON or not an object raises an InputError naming the file
    and line; with `on_error` the error is passed to it instead and the line skipped (counted
    by the caller, never silently dropped).
    """
    import gzip

    path = require_file(path, what)
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                where = f"{path}:{lineno}"
                try:
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise InputError(f"{where}: not valid UTF-8 ({err.reason})") from None
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise InputError(
                            f"{where}: invalid JSON ({err.msg} at column {err.colno})"
                        ) from None
                    if not isinstance(obj, dict):
                        raise InputError(
                            f"{where}: expected a JSON object, got {type(obj).__name__}"
                        )
                except InputError as err:
                    if on_error is None:
                        raise
                    on_error(err)
                    continue
                yield where, obj
    except (OSError, EOFError) as err:  # e.g. a truncated or non-gzip .gz
        raise InputError(f"{what} {path}: cannot be read ({err})") from None


def require_file(path: str | Path, what: str) -> Path:
    """A user-given input file that must exist: a clear InputError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path}: no such file")
    if path.is_dir():
        raise InputError(f"{what} {path}: is a directory, expected a file")
    return path
