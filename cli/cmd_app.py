"""`diag app`: the Streamlit explorer over the result files of `diag` runs."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from cli.common import InputError
from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Browse results: results table and differences with CIs, tokens colored by KL/NLL
(follow beside precede), attention heatmaps per layer/head, curves over training.

Reads only parquet + manifest.json (the files diag report reads); never loads a model.
Runs until interrupted (Ctrl-C).

Example: diag app --runs demo_out --port 8501
"""


def streamlit_command(runs: list[str], host: str, port: int) -> list[str]:
    """The `streamlit run` command line for the explorer (headless, no telemetry, no watcher;
    flags checked with Streamlit 1.67)."""
    import sys
    from pathlib import Path

    import app

    script = Path(app.__file__).resolve().parent / "explorer.py"
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--",
    ]  # fmt: skip
    for run in runs:
        cmd += ["--runs", run]
    return cmd


@dataclass
class AppConfig:
    """Options of `diag app`."""

    runs: list[str] = field(
        metadata={"help": "Run folder, or a folder holding runs (repeat for more)."}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8501, metadata={"help": "Port to listen on."})


def serve(cfg: AppConfig) -> None:
    """Check the runs and the port, then run the Streamlit server until it stops (or Ctrl-C)."""
    import os
    import signal
    import socket
    import subprocess
    from pathlib import Path

    from reports.results import find_runs

    for run in cfg.runs:
        if not Path(run).is_dir():
            raise InputError(f"--runs {run}: no such folder")
    find_runs(cfg.runs)  # InputError now, not in the browser, when there is no run at all
    host, port = cfg.host, cfg.port
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise InputError(f"--port {port}: cannot listen on {host}:{port} ({err})") from None
    runs = [str(Path(r).resolve()) for r in cfg.runs]
    cmd = streamlit_command(runs, host, port)
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    proc = subprocess.Popen(cmd, env=env)

    def stop(signum: int, _frame: object) -> None:
        proc.terminate()  # SIGTERM to diag app also stops the server it started

    signal.signal(signal.SIGTERM, stop)
    typer.echo(f"codecot explorer: http://{host}:{port}  (runs: {', '.join(runs)}; Ctrl-C stops)")
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = proc.wait()
    raise typer.Exit(code if code and code > 0 else 0)


def register(app: typer.Typer) -> None:
    command_from_config(
        app,
        "app",
        AppConfig,
        "cli.cmd_app:serve",
        doc=DOC,
    )
