"""Every `diag` command is generated from its config: each field is an option with a help text,
old flag names still set the same field, and list/tuple/bool options parse as they always did."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import cli.options
from cli.main import COMMAND_MODULES, app, console_app
from cli.options import config_options
from plumbing import InputError

runner = CliRunner()


def _commands() -> dict[str, Any]:
    return {info.name: info.callback for info in app.registered_commands}


def test_every_command_is_generated_from_a_config():
    commands = _commands()
    assert set(commands) == set(COMMAND_MODULES)
    for name, callback in commands.items():
        assert hasattr(callback, "config_cls"), f"diag {name}: not built by command_from_config"


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_help_lists_every_config_field_with_its_help(name):
    config_cls = _commands()[name].config_cls
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    params = {opt: p for p in get_command(app).commands[name].params for opt in p.opts}
    options = config_options(config_cls)
    assert options, f"{config_cls.__name__} has no CLI field"
    for option in options:
        assert option.flag in result.output, f"diag {name} --help lacks {option.flag}"
        param = params[option.flag]
        assert param.name == option.name
        assert option.help and param.help.startswith(option.help), option.name
        for alias in option.aliases:
            assert alias in param.opts, f"{option.flag}: alias {alias} missing"


class _Captured(Exception):
    """Raised in place of running a command's target (so nothing after it runs either)."""


def test_the_console_script_builds_the_same_commands_on_demand():
    lazy = console_app()
    top = runner.invoke(lazy, ["--help"])
    assert top.exit_code == 0 and top.output == runner.invoke(app, ["--help"]).output
    for name in COMMAND_MODULES:
        lazy_help = runner.invoke(lazy, [name, "--help"])
        assert lazy_help.exit_code == 0, (name, lazy_help.output)
        assert lazy_help.output == runner.invoke(app, [name, "--help"]).output, name


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The configs the commands build, instead of running their targets."""
    configs: list[Any] = []

    def capture(target: str, cfg: Any) -> None:
        configs.append(cfg)
        raise _Captured(target)

    monkeypatch.setattr(cli.options, "invoke", capture)
    return configs


def _config(captured: list[Any], *args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert isinstance(result.exception, _Captured), (result.output, result.exception)
    return captured.pop()


def test_alias_flags_set_the_same_field(captured):
    scoring = ("ppl", "--data", "t.jsonl", "--out", "o", "--model", "m")
    assert _config(captured, *scoring, "--bootstrap", "7").n_resamples == 7
    assert _config(captured, *scoring, "--n-resamples", "7").n_resamples == 7
    assert _config(captured, *scoring).n_resamples == 10_000
    assert _config(captured, "eval", "--out", "o", "--n-boot", "9").n_resamples == 9
    assert _config(captured, "eval", "--out", "o", "--n-resamples", "9").n_resamples == 9
    ablate = ("ablate", "--run", "r", "--out", "o")
    cfg = _config(captured, *ablate, "--n-boot", "5", "--n-resamples", "6")
    assert (cfg.eval_n_resamples, cfg.n_resamples) == (5, 6)
    assert _config(captured, *ablate, "--eval-n-resamples", "5").eval_n_resamples == 5


def test_renamed_flags_and_sequences_parse_as_before(captured):
    cfg = _config(captured, "eval", "--out", "o", "--k", "1,5", "--timeout", "3")
    assert (cfg.ks, cfg.timeout_s) == ((1, 5), 3.0)
    assert _config(captured, "eval", "--out", "o").ks == (1, 5, 10)
    assert _config(captured, "eval", "--out", "o").fresh_interpreter is False
    assert _config(captured, "eval", "--out", "o", "--fresh-interpreter").fresh_interpreter
    for bad in ("0", "1,x"):
        result = runner.invoke(app, ["eval", "--out", "o", "--k", bad])
        assert isinstance(result.exception, InputError), bad
    cfg = _config(captured, "train", "--data", "d", "--format", "wo", "--base", "b", "--out", "o")
    assert (cfg.format, cfg.group_by_length, cfg.max_steps) == ("wo", True, -1)
    cfg = _config(captured, "demo")
    assert (cfg.out, cfg.formats) == ("demo_out", None)
    assert _config(captured, "demo", "--formats", "seed, wo").formats == ["seed", "wo"]
    cfg = _config(captured, "report", "--runs", "a", "--runs", "b", "--out", "o", "--no-images")
    assert (cfg.runs, cfg.only, cfg.images) == (["a", "b"], [], False)


def test_synth_fills_its_nested_parts(captured):
    cfg = _config(captured, "synth", "--out", "o")
    assert cfg.sources == ["toy"]
    assert cfg.decontam == ["humaneval"]
    assert cfg.split_ratios == (0.9, 0.05, 0.05)
    assert cfg.near_dup_threshold == 0.85
    assert cfg.toy_world == {}
    args = ["synth", "--out", "o", "--source", "a", "--source", "b", "--no-humaneval"]
    args += ["--decontam", "x.jsonl", "--near-dup-threshold", "0", "--split-ratios", "0.8,0.1,0.1"]
    args += ["--toy-families", "f1,f2", "--toy-depth", "1,1", "--timeout", "5", "--workers", "3"]
    args += ["--ban-import", "json", "--allow-import", "os", "--sandbox-timeout", "2"]
    cfg = _config(captured, *args)
    assert cfg.sources == ["a", "b"]
    assert cfg.decontam == ["x.jsonl"]
    assert cfg.near_dup_threshold is None
    assert cfg.split_ratios == (0.8, 0.1, 0.1)
    assert cfg.toy_world == {"families": ["f1", "f2"], "depth_weights": (1.0, 1.0)}
    assert (cfg.teacher_cfg.timeout_s, cfg.teacher_cfg.workers) == (5.0, 3)
    assert "json" in cfg.filters.banned_imports and "os" not in cfg.filters.banned_imports
    assert cfg.sandbox_timeout_s == 2.0
    result = runner.invoke(app, ["synth", "--out", "o", "--split-ratios", "0.5,0.5"])
    assert isinstance(result.exception, InputError)


def test_a_field_without_help_is_refused():
    from dataclasses import dataclass

    @dataclass
    class Undocumented:
        undocumented_knob: int

    with pytest.raises(TypeError, match="no metadata help"):
        cli.options.command_from_config(typer.Typer(), "x", Undocumented, "m:f", doc="x")
