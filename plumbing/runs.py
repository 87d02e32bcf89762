"""Run folders and their manifests.

Every codecot command writes under a run folder (`--out`); `manifest.json` (config, seeds, package
versions, git revision, timings, status) is written last, so a folder whose manifest says
`finished` holds a complete run. `check_out_dir` refuses to clobber one (no writes),
`prepare_out_dir` creates, empties (--overwrite) or keeps (--resume) it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plumbing.errors import InputError
from plumbing.files import atomic_write_json, to_jsonable

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
