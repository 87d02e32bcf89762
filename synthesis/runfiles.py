"""Run folders: atomic writes, manifests, and the one error type every command turns into exit 2.

Every codecot command writes under a run folder. Results never appear half-written: each file is
written to a temporary name in the same folder and renamed into place, and `manifest.json` (config,
seeds, package versions, git revision, timings, status) is written last. This module lives in
`synthesis/` because it is the lowest data-flow package; every later package may import it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"

# Packages whose versions go into every manifest (missing ones are skipped).
_VERSIONED = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "deepspeed",
    "datasets",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "transformer_lens",
    "captum",
    "plotly",
    "streamlit",
)


class InputError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2.

    The message names the cause precisely: the file (and line, or field) or the flag at fault.
    """


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


# ---------------------------------------------------------------------------------------------
# manifests


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> str | None:
    """The codecot checkout's commit (with '+dirty' when it has local changes), if it is a repo."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


class Manifest:
    """Collects a command's config, seeds, timings and outputs; `finish()` writes manifest.json.

    Usage:
        man = Manifest("train", out_dir, config=cfg, seed=cfg.seed)
        with man.timed("tokenize"):
            ...
        man.finish(outputs={"checkpoints": [...]}, summary={...})
    """

    def __init__(
        self, command: str, out_dir: str | Path, config: Any = None, seed: int | None = None
    ):
        self.command = command
        self.out_dir = Path(out_dir)
        self.config = to_jsonable(config) if config is not None else {}
        self.seed = seed
        self.started = time.time()
        self.timings: dict[str, float] = {}
        self.extra: dict[str, Any] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 3)

    def as_dict(self, status: str) -> dict[str, Any]:
        return {
            "command": self.command,
            "status": status,
            "config": self.config,
            "seed": self.seed,
            "argv": sys.argv,
            "started": _dt.datetime.fromtimestamp(self.started, _dt.timezone.utc).isoformat(),
            "wall_s": round(time.time() - self.started, 3),
            "timings_s": self.timings,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "host": platform.node(),
            **to_jsonable(self.extra),
        }

    def finish(self, **extra: Any) -> Path:
        self.extra.update(extra)
        return atomic_write_json(self.out_dir / MANIFEST, self.as_dict("finished"))


def check_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse an --out that holds a finished run unless --overwrite or --resume (no writes)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is not None and manifest.get("status") == "finished" and not (overwrite or resume):
        raise InputError(
            f"--out {out}: already holds a finished {manifest.get('command', '?')} run "
            "(pass --overwrite to replace it or --resume to continue it)"
        )
    return out


def prepare_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create `out`, refusing to clobber a finished run unless --overwrite or --resume was given.

    A folder holding a finished run (its manifest says so) is refused; with `overwrite` it is
    emptied first; with `resume` it is kept as is and the command continues from what is there.
    """
    out = check_out_dir(out, overwrite=overwrite, resume=resume)
    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


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
