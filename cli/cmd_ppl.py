"""`diag ppl`: conditional perplexity of the cot and code spans (and the whole response).

Example: diag ppl --model runs/follow --model runs/precede --data triples.jsonl --out runs/ppl

This module also builds the options every scoring command shares (`scoring_command`, used by
`diag kl` and `diag valloss`), so the three list them identically.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from cli.common import invoke

# (annotation, help) of the options in diagnostics.scoring.ScoringOptions, in --help order
COMMON_OPTIONS: dict[str, tuple[Any, str]] = {
    "data": (str, "triples.jsonl (diag synth output or your own)."),
    "out": (str, "Run folder to write."),
    "split": (str, "Split of the triples to score (all = every triple)."),
    "format": (str, "Text format: seed|wo|follow|precede (default: the model's training format)."),
    "batch_size": (int, "Sequences per forward pass (padded, length-sorted)."),
    "max_examples": (int, "Use at most this many triples."),
    "max_len": (int, "Skip (and count) examples longer than this many tokens."),
    "dtype": (str, "auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16."),
    "device": (str, "cpu | cuda | cuda:N (default: cuda if present)."),
    "chunk_tokens": (int, "Positions per vocab chunk (0 = auto: ~2 MiB fp32 on CPU, 256 MiB GPU)."),
    "bootstrap": (int, "Bootstrap resamples for every confidence interval."),
    "confidence": (float, "Confidence level of the intervals."),
    "test": (str, "Paired test: wilcoxon (signed-rank) | ttest (paired t)."),
    "pooling": (str, "Several seeds of a format: average (per example) | hierarchical."),
    "stats_seed": (int, "Bootstrap seed."),
    "resume": (bool, "Continue an interrupted run in --out (skips finished parts)."),
    "overwrite": (bool, "Replace a finished run in --out."),
}
REQUIRED = ("data", "out")


def scoring_command(
    app: typer.Typer,
    name: str,
    config_cls: type,
    target: str,
    doc: str,
    specific: dict[str, tuple[Any, Any, str]],
) -> Callable[..., None]:
    """Register `diag NAME`: its own options (name -> (annotation, default, help); default ...
    means required) first, then the shared ones, all filling `config_cls`, then `invoke(target)`.
    """
    params = []
    fields = config_cls.__dataclass_fields__
    for opt, (annotation, default, help_text) in specific.items():
        params.append(_param(opt, annotation, typer.Option(default, help=help_text)))
    for opt, (annotation, help_text) in COMMON_OPTIONS.items():
        default = ... if opt in REQUIRED else fields[opt].default
        flag = f"--{opt.replace('_', '-')}"
        if annotation is bool:
            flag = f"{flag}/--no-{opt.replace('_', '-')}"
        params.append(_param(opt, annotation, typer.Option(default, flag, help=help_text)))

    def command(**kwargs: Any) -> None:
        cfg = config_cls(**{k: v for k, v in kwargs.items() if v is not None})
        invoke(target, cfg)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = name
    return app.command(name)(command)


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def register(app: typer.Typer) -> None:
    from diagnostics.ppl import PplConfig

    scoring_command(
        app,
        "ppl",
        PplConfig,
        "diagnostics.ppl:main",
        """Conditional perplexity of each response span under teacher forcing.

        PPL(S | prefix) = exp(-(1/|S|) sum_{t in S} log p(y_t | y_<t)): in follow PPL(cot | prompt)
        and PPL(code | prompt, cot); in precede PPL(code | prompt) and PPL(cot | prompt, code);
        plus the whole response and the gap log PPL(cot) - log PPL(code). One forward pass per
        example. Writes ppl.parquet, ppl_summary.parquet (means, CIs), summary_ppl.parquet
        (paired differences, CIs, paired tests), manifest.json.

        Example: diag ppl --model runs/follow --model runs/precede --score-format follow
        --score-format precede --data triples.jsonl --out runs/ppl
        """,
        {
            "model": (list[str], ..., "Repeatable: model dir, training run dir, or checkpoint."),
            "score_format": (
                list[str],
                None,
                "Repeatable: also score on this format's text (cross-order scoring).",
            ),
        },
    )
