"""Typer commands generated from config dataclasses: the config is the CLI's one source of truth.

    from dataclasses import dataclass, field

    @dataclass
    class TrainConfig:
        data: str = field(metadata={"help": "triples.jsonl."})
        lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})

    def register(app):
        from training.sft import TrainConfig
        command_from_config(app, "train", TrainConfig, "training.sft:main", doc=DOC)

One option per field of the config, in field order (required ones first):
    flag      --field-name; metadata "flag" renames it (e.g. --timeout for timeout_s), metadata
              "aliases" adds older names that keep working (e.g. ["--n-boot"])
    help      metadata "help", else COMMON_HELP[field name] (the fields many commands share);
              every option has one; `help_more` appends a registry listing
    default   the field's default (default_factory called); a field without one, or named in
              `required`, is a required option; `defaults` overrides a default on the CLI only
    types     bool: --x/--no-x; int, float, str and their Optional: that type; list[str]:
              repeatable (--model a --model b); tuple[T, ...] and tuple[T, T, T]: repeatable
              and comma-separated (--k 1,5,10), each item converted to T, the length checked
    metadata  "comma": True also splits a list field's values at commas (--formats seed,wo);
              "min": N is the least value of each item of a comma list; "cli": False makes no
              option (a field the command's `build` fills from its `extra` options)

The command fills the config and calls `target` ("package.module:function") through
`cli.common.invoke`, imported only when the command runs, so `diag --help` imports no torch.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import typer

from cli.common import InputError, invoke

# name -> (annotation, typer.Option(...)) of an option that is no field of the config
ExtraOptions = Mapping[str, tuple[Any, Any]]

# The options of the scoring commands (ppl, kl, valloss) that ScoringOptions defaults but the CLI
# requires.
SCORING_REQUIRED = ("data", "out")

# The help of the fields many commands share, by field name, so each reads the same everywhere;
# a field's own metadata "help" wins.
COMMON_HELP = {
    "model": "Repeatable: model dir, training run dir (its final/) or checkpoint dir.",
    "data": "triples.jsonl (diag synth output or your own).",
    "out": "Run folder to write.",
    "split": "Split of the triples (all = every triple).",
    "format": "Text format: seed|wo|follow|precede (default: the model's training format).",
    "max_examples": "Use at most this many triples.",
    "max_len": "Skip (and count) examples longer than this many tokens.",
    "dtype": "auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16.",
    "device": "cpu | cuda | cuda:N (default: cuda if available).",
    "n_resamples": "Bootstrap resamples for the CIs.",
    "confidence": "Confidence level of the intervals.",
    "test": "Paired test: wilcoxon (signed-rank) | ttest (paired t).",
    "stats_seed": "Bootstrap seed.",
    "max_tasks": "Evaluate only the first N tasks.",
    "n_samples": "Samples per task (>1 needs sampling).",
    "temperature": "0 = greedy; > 0 samples.",
    "max_new_tokens": "Generated tokens per sample.",
    "workers": "Parallel sandbox processes (default: CPUs).",
    "timeout_s": "Sandbox seconds per program.",
    "resume": "Continue an interrupted run in --out (skips finished parts).",
    "overwrite": "Replace a finished run in --out.",
    "progress": "Show progress bars.",
}


@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """A config field as the CLI sees it."""

    name: str
    annotation: Any  # the resolved type hint
    default: Any  # the field's default (default_factory called); ... when it has none
    metadata: Mapping[str, Any]  # the field's, or a base class's for a field that only
    # overrides the default

    @property
    def help(self) -> str | None:
        """metadata "help", else the COMMON_HELP of the field's name."""
        return self.metadata.get("help") or COMMON_HELP.get(self.name)

    @property
    def flag(self) -> str:
        """metadata "flag", else --field-name."""
        return self.metadata.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def aliases(self) -> list[str]:
        return list(self.metadata.get("aliases", ()))


def config_options(config_cls: type) -> list[ConfigOption]:
    """The CLI options of `config_cls`: every field but those with metadata cli=False."""
    hints = typing.get_type_hints(config_cls)
    options = []
    for field in dataclasses.fields(config_cls):
        metadata = field.metadata
        for base in config_cls.__mro__[1:]:
            if metadata:
                break
            inherited = getattr(base, "__dataclass_fields__", {}).get(field.name)
            metadata = inherited.metadata if inherited is not None else metadata
        if not metadata.get("cli", True):
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = ...
        options.append(ConfigOption(field.name, hints[field.name], default, metadata))
    return options


def _unoptional(annotation: Any) -> Any:
    """`int | None` -> int (the CLI type of an Optional field)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _sequence(annotation: Any) -> tuple[type, Any, int | None] | None:
    """(container, item type, fixed length or None) of a list or tuple annotation, else None."""
    origin = typing.get_origin(annotation)
    if origin not in (list, tuple):
        return None
    args = typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple, args[0], None
    if origin is tuple:
        if len(set(args)) != 1:
            raise TypeError(f"tuple fields need one item type, not {annotation}")
        return tuple, args[0], len(args)
    return list, args[0] if args else str, None


class _Converter:
    """Turns the raw value of a list/tuple option (a list of strings) into the field's value."""

    def __init__(self, option: ConfigOption, container: type, item: Any, length: int | None):
        self.option, self.container, self.item, self.length = option, container, item, length
        self.comma = option.metadata.get("comma", container is tuple)
        self.least = option.metadata.get("min")

    def raw_default(self, default: Any) -> Any:
        """The CLI default (strings) of the field default `default`."""
        if default is None or default is ...:
            return default
        if self.comma and default:
            return [",".join(map(str, default))]
        return [str(x) for x in default]

    def __call__(self, raw: Iterable[str] | None) -> Any:
        texts = list(raw or [])
        if not texts and self.option.default is None:
            return None
        parts = [p.strip() for t in texts for p in t.split(",")] if self.comma else texts
        parts = [p for p in parts if p]
        flag, given = self.option.flag, ",".join(texts)
        kind = getattr(self.item, "__name__", "value")
        try:
            values = [self.item(p) for p in parts]
        except ValueError:
            raise InputError(
                f"{flag} {given!r}: expected {kind} values separated by commas"
            ) from None
        if self.length is not None and len(values) != self.length:
            example = ",".join(map(str, self.option.default))
            raise InputError(
                f"{flag} {given!r}: expected {self.length} {kind} values, e.g. {example}"
            )
        if self.least is not None and (not values or min(values) < self.least):
            raise InputError(f"{flag} {given!r}: expected {kind} values >= {self.least}")
        return self.container(values)


def _parameter(
    option: ConfigOption, required: bool, default: Any, extra_help: str | None
) -> tuple[inspect.Parameter, _Converter | None]:
    help_text = option.help
    if not help_text:
        raise TypeError(f"config field {option.name!r} has no metadata help (the CLI's --help)")
    if extra_help:
        help_text = f"{help_text} {extra_help}"
    flag, aliases = option.flag, option.aliases
    base = _unoptional(option.annotation)
    converter = None
    sequence = _sequence(base)
    if sequence is not None:
        converter = _Converter(option, *sequence)
        cli_type: Any = list[str]
        default = converter.raw_default(default)
    elif base is bool:
        if aliases:
            raise TypeError(f"{option.name}: aliases of a bool flag are not supported")
        cli_type, flag = bool, f"{flag}/--no-{flag[2:]}"
    else:
        cli_type = base
    metavar = f"<{converter.item.__name__},...>" if converter and converter.comma else None
    info = typer.Option(
        ... if required else default, flag, *aliases, help=help_text, metavar=metavar
    )
    param = inspect.Parameter(
        option.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=cli_type
    )
    return param, converter


def command_from_config(
    app: typer.Typer,
    name: str,
    config_cls: type,
    target: str,
    *,
    doc: str,
    required: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    help_more: Mapping[str, str] | None = None,
    extra: ExtraOptions | None = None,
    build: Callable[[dict[str, Any]], Any] | None = None,
    report: Callable[[Any, Any], None] | None = None,
) -> Callable[..., None]:
    """Register `diag NAME`: one option per config field, then `invoke(target, cfg)`.

    required:  fields the CLI requires although the config has a default (e.g. --out)
    defaults:  CLI defaults that differ from the config's (field name -> default)
    help_more: text appended to a field's help (e.g. a registry listing built at registration)
    extra:     options that are no field (name -> (annotation, typer.Option(...)))
    build:     values of every option -> the config (default: config_cls(**field values))
    report:    called with (what the target returned, cfg), e.g. to echo a one-line summary
    """
    must, defaults, help_more = set(required), dict(defaults or {}), dict(help_more or {})
    options = config_options(config_cls)
    params: list[inspect.Parameter] = []
    converters: dict[str, _Converter] = {}
    for option in options:
        default = defaults.get(option.name, option.default)
        is_required = option.name in must or default is ...
        param, converter = _parameter(option, is_required, default, help_more.get(option.name))
        params.append(param)
        if converter is not None:
            converters[option.name] = converter
    for opt, (annotation, info) in (extra or {}).items():
        params.append(
            inspect.Parameter(
                opt, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation
            )
        )
    params.sort(key=lambda p: p.default.default is not ...)  # required options first (stable)
    field_names = {option.name for option in options}

    def command(**values: Any) -> None:
        for opt, convert in converters.items():
            values[opt] = convert(values[opt])
        if build is not None:
            cfg = build(values)
        else:
            cfg = config_cls(**{k: v for k, v in values.items() if k in field_names})
        result = invoke(target, cfg)
        if report is not None:
            report(result, cfg)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = name
    command.config_cls = config_cls  # type: ignore[attr-defined]  # what tests check --help against
    return app.command(name)(command)


__all__ = [
    "COMMON_HELP",
    "ConfigOption",
    "ExtraOptions",
    "command_from_config",
    "config_options",
]
