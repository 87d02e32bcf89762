"""The `diag` console script: lists its commands without importing torch."""

from __future__ import annotations

import subprocess
import sys

from conftest import run_diag

from cli.main import COMMAND_MODULES


def test_help_lists_every_command():
    proc = run_diag("--help", timeout=60)
    assert proc.returncode == 0
    for name in COMMAND_MODULES:
        assert f" {name} " in proc.stdout or f" {name}\n" in proc.stdout, name


def _loaded_after(setup: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `setup`."""
    code = f"import sys\n{setup}\nprint(','.join(m for m in {modules!r} if m in sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.strip().split(",") if m]


def test_help_does_not_import_torch():
    setup = "from cli.main import app\nfrom typer.main import get_command\nget_command(app)"
    assert _loaded_after(setup, ("torch", "transformers", "pandas", "streamlit")) == []


def test_unknown_option_is_a_usage_error():
    proc = run_diag("train", "--bogus", timeout=60)
    assert proc.returncode == 2


def test_console_help_imports_no_config_module():
    # `diag --help` lists the commands from their modules' DOC: no config module, no torch
    setup = (
        "from typer.testing import CliRunner\n"
        "from cli.main import console_app\n"
        "assert CliRunner().invoke(console_app(), ['--help']).exit_code == 0"
    )
    loaded = ("torch", "numpy", "diagnostics.ppl", "training.sft", "synthesis.pipeline")
    assert _loaded_after(setup, loaded) == []
