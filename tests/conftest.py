"""Shared fixtures and helpers: a tiny base model pretrained here (once per session), small
triples, short SFT runs, the real result set of every `diag` command, and a runner for `diag`.

    from conftest import run_diag, skip_or_fail

    proc = run_diag("ppl", "--model", str(run), "--out", str(out))      # never raises on exit != 0
    proc = run_diag_here("kl", "--model", "bad", ...)                   # the same, in this process
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_diag("eval", ..., check=True)                                   # raises with the stderr tail
    if shutil.which("chromium") is None:
        skip_or_fail("Debian chromium is not installed (make chromium)")

CODECOT_STRICT=1 (set by `make test`) turns `skip_or_fail` into a failure: there every
prerequisite is installed, so a missing one must not pass silently as a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")

# Never reach a hub; keep library caches out of $HOME.
ROOT = Path(__file__).resolve().parent.parent
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "TORCH_EXTENSIONS_DIR": str(ROOT / ".cache" / "torch_ext"),
    "MPLCONFIGDIR": str(ROOT / ".cache" / "mpl"),
}.items():
    os.environ.setdefault(key, value)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import write_test_triples  # noqa: E402

DIAG = str(Path(sys.executable).with_name("diag"))
STRICT_ENV = "CODECOT_STRICT"
STRICT = os.environ.get(STRICT_ENV) == "1"


def contained_batch(
    run: Callable[[int], T], write_dirs: list[str], token: str, uid_base: int
) -> tuple[T, dict[str, Any]]:
    """Run a batch of hostile programs (`run(port)`, port: a listener on the host's 127.0.0.1)
    and collect what escaped it: processes of its private uids still alive (`leftovers`), the
    write_dirs where a file named `token` appeared (removed again: `written`), and whether
    anything reached the listener (`connected`). Shared by the Python and native hostile suites."""
    import select
    import socket

    from sandbox.procs import leftovers

    for d in write_dirs:
        assert not os.path.exists(os.path.join(d, token))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    result = run(server.getsockname()[1])
    left = leftovers(uids=range(uid_base, uid_base + 17_000))
    written = [d for d in write_dirs if os.path.exists(os.path.join(d, token))]
    for d in written:
        os.unlink(os.path.join(d, token))
    connected = bool(select.select([server], [], [], 0.2)[0])
    server.close()
    return result, {"leftovers": left, "written": written, "connected": connected}


def skip_or_fail(reason: str) -> NoReturn:
    """Stop a test whose prerequisite outside this repository (a system tool) is absent: a skip on
    a dev machine, a failure under `make test` (CODECOT_STRICT=1), which installs them all."""
    if STRICT:
        pytest.fail(f"{reason} ({STRICT_ENV}=1: a missing prerequisite fails)", pytrace=False)
    pytest.skip(reason)


def run_diag(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """`diag ARGS...` as a subprocess, output captured as text. `env`: variables set on top of
    this process's environment; `check`: raise AssertionError (with the stderr tail) on exit != 0,
    for callers that only need the command's files."""
    full_env = {**os.environ, **env} if env is not None else None
    proc = subprocess.run(
        [DIAG, *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"diag {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc


def run_diag_here(*args: str) -> subprocess.CompletedProcess:
    """`diag ARGS...` in this process, through the console script's own entry (`cli.main.run`:
    InputError -> one `error:` line, exit 2), output captured: for bad-input checks, the same
    exit code and stderr as `run_diag` without starting an interpreter (~3 s) per call."""
    import contextlib
    import io

    from cli.main import run

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["diag", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(["diag", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` preset base model (tokenizer with a chat template), built once per session."""
    from training.pretrain import PretrainConfig, main

    out = tmp_path_factory.mktemp("base") / "tiny"
    main(PretrainConfig(out=str(out), preset="tiny", seed=0))
    return out


@pytest.fixture(scope="session")
def triples_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_triples(tmp_path_factory.mktemp("data") / "triples.jsonl", n=40)


@pytest.fixture(scope="session")
def tiny_runs(tiny_base: Path, triples_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """Short SFT runs of the tiny base in `follow` and `precede` (checkpoints at 4 and 8)."""
    from training.sft import TrainConfig, main

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for fmt in ("follow", "precede"):
        out = root / fmt
        main(
            TrainConfig(
                data=str(triples_file),
                format=fmt,
                base=str(tiny_base),
                out=str(out),
                max_steps=8,
                save_steps=4,
                batch_size=8,
                lr=3e-3,
                logging_steps=2,
            )
        )
        runs[fmt] = out
    return runs


@pytest.fixture(scope="session")
def results(tiny_runs, tiny_base: Path, triples_file: Path, tmp_path_factory):
    """The real result set of every `diag` command (tests/results_fixture.py), shared by the
    report and dashboard tests; built once per session, on first use."""
    from results_fixture import build_result_set

    return build_result_set(tiny_runs, tiny_base, triples_file, tmp_path_factory.mktemp("rs"))
