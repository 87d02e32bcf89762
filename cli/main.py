"""`diag`: the one console script of codecot.

    diag --help                 list the commands
    diag COMMAND --help         a command's options and an example

Each command lives in `cli/cmd_<name>.py`: its options are generated from a config dataclass
(`cli.options.command_from_config`), and running it calls the real `main(cfg)` in its package,
imported lazily. The console script (`run`) builds only the command it runs, and lists the
commands from each module's DOC, so `diag --help` imports no config module (and no torch).
`cli.main.app` is the whole app, every command built (tests, `python -m cli.main`). Bad input
(`InputError`) prints one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from types import ModuleType
from typing import Any

import click
import typer
from typer.core import TyperGroup

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


# Per-model diagnostics that need no cli/cmd_<name>.py: name -> (module, one-line summary for
# `diag --help`). The module holds its config dataclass as CONFIG and `main(cfg)` (which runs
# its plumbing.runner Command); the config's fields are the options and the module docstring
# is the command's --help. Adding a diagnostic is one line here (docs/DESIGN.md).
DIAGNOSTICS: dict[str, tuple[str, str]] = {
    "gradnorm": (
        "diagnostics.gradnorm",
        "Gradient norm per span: ||d L_S / d theta||, L_S = mean NLL over the span's tokens.",
    ),
}


def _diagnostic_module(name: str) -> ModuleType:
    """A command module made from a DIAGNOSTICS entry (its DOC and register)."""
    module_name, summary = DIAGNOSTICS[name]
    made = ModuleType(f"cli.cmd_{name}")

    def register(app: typer.Typer) -> None:
        from cli.options import command_from_config

        module = importlib.import_module(module_name)
        doc = summary + "\n\n" + inspect.cleandoc(module.__doc__ or "")
        command_from_config(app, name, module.CONFIG, f"{module_name}:main", doc=doc)

    made.DOC = summary  # type: ignore[attr-defined]
    made.register = register  # type: ignore[attr-defined]
    return made


def command_names() -> list[str]:
    """Every command, in the order `diag --help` lists them (new diagnostics last)."""
    return [*COMMAND_MODULES, *(n for n in DIAGNOSTICS if n not in COMMAND_MODULES)]


def _command_module(name: str) -> ModuleType | None:
    if name in DIAGNOSTICS:
        return _diagnostic_module(name)
    try:
        return importlib.import_module(f"cli.cmd_{name}")
    except ModuleNotFoundError as err:
        if err.name != f"cli.cmd_{name}":
            raise
        return None  # not built yet


def _root() -> None:
    """codecot: SFT a code LLM in four formats (seed, wo, follow = CoT first, precede = code
    first), evaluate it, and explain the difference with four diagnostics."""


def _new_app(group_cls: type[TyperGroup] | None = None) -> typer.Typer:
    new = typer.Typer(
        name="diag",
        cls=group_cls,
        help="codecot: train code LLMs to reason before or after the code, and find out which is "
        "better and why.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    new.callback()(_root)
    return new


def build_app(names: tuple[str, ...] | None = None) -> typer.Typer:
    """The `diag` app with the commands `names` registered (all by default)."""
    built = _new_app()
    for name in command_names() if names is None else names:
        module = _command_module(name)
        if module is not None:
            module.register(built)
    return built


class _LazyCommands(TyperGroup):
    """The console script's group: a command is built (its config imported) only when run or
    asked for its --help; the listing comes from each command module's DOC."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in command_names() if _command_module(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.list_commands(ctx):
            group = typer.main.get_command(build_app((cmd_name,)))
            self.commands[cmd_name] = group.commands[cmd_name]  # type: ignore[attr-defined]
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))  # as click.Group's listing
        rows = []
        for name in names:
            doc = inspect.cleandoc(_command_module(name).DOC)  # type: ignore[union-attr]
            rows.append((name, click.utils.make_default_short_help(doc, limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def console_app() -> typer.Typer:
    """The app the console script runs: commands built on demand (see _LazyCommands)."""
    return _new_app(_LazyCommands)


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: the console script never needs every command
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run() -> None:
    """Console-script entry point: run the app, turning InputError into exit code 2."""
    from plumbing import InputError

    try:
        console_app()()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
