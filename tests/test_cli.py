"""The `diag` console script: lists its commands without importing torch."""

from __future__ import annotations

import subprocess
import sys

from conftest import DIAG

from cli.main import COMMAND_MODULES


def test_help_lists_every_command():
    proc = subprocess.run([DIAG, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for name in COMMAND_MODULES:
        assert f" {name} " in proc.stdout or f" {name}\n" in proc.stdout, name


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from cli.main import app\n"
        "from typer.main import get_command\n"
        "get_command(app)\n"
        "heavy = [m for m in ('torch', 'transformers', 'pandas', 'streamlit') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_unknown_option_is_a_usage_error():
    proc = subprocess.run([DIAG, "train", "--bogus"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2


def test_console_help_imports_no_config_module():
    # `diag --help` lists the commands from their modules' DOC: no config module, no torch
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import console_app\n"
        "assert CliRunner().invoke(console_app(), ['--help']).exit_code == 0\n"
        "loaded = ('torch', 'numpy', 'diagnostics.ppl', 'training.sft', 'synthesis.pipeline')\n"
        "print(','.join(m for m in loaded if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
