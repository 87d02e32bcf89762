"""`diag`: the one console script of codecot.

    diag --help                 list the commands
    diag COMMAND --help         a command's options and an example

Each command lives in `cli/cmd_<name>.py` as a thin Typer wrapper that fills a config dataclass
and calls the real `main(cfg)` in its package, imported lazily so `diag --help` stays fast (no
torch import). Bad input (`InputError`) prints one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

# Order here is the order `diag --help` lists them: the flow of a study.
COMMAND_MODULES = (
    "synth",
    "pretrain",
    "train",
    "eval",
    "ppl",
    "kl",
    "valloss",
    "attn",
    "ablate",
    "gradnorm",
    "report",
    "app",
    "demo",
)

app = typer.Typer(
    name="diag",
    help="codecot: train code LLMs to reason before or after the code, and find out which is "
    "better and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """codecot: SFT a code LLM in four formats (seed, wo, follow = CoT first, precede = code
    first), evaluate it, and explain the difference with four diagnostics."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"cli.cmd_{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"cli.cmd_{_name}":
            raise
        continue  # not built yet
    _module.register(app)


def run() -> None:
    """Console-script entry point: run the app, turning InputError into exit code 2."""
    from plumbing import InputError

    try:
        app()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
