"""`diag gradnorm`: gradient norm of each span's mean NLL, per example (and per layer)."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    from diagnostics.gradnorm import GradNormConfig as C

    @app.command("gradnorm")
    def gradnorm(
        model: list[str] = typer.Option(
            ..., help="Repeatable: model dir, training run dir (its final/) or checkpoint dir."
        ),
        data: str = typer.Option(..., help="triples.jsonl."),
        out: str = typer.Option(..., help="Run folder to write."),
        split: str = typer.Option(C.split, help="Split to score (all = every triple)."),
        format: str = typer.Option(None, "--format", help="Default: each model's own format."),
        spans: str = typer.Option(
            None, help="cot,code,response (comma-separated); default: those present."
        ),
        max_examples: int = typer.Option(None, help="Use at most this many triples."),
        max_len: int = typer.Option(None, help="Skip (and count) longer examples."),
        dtype: str = typer.Option(C.dtype, help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16."),
        device: str = typer.Option(None, help="cpu | cuda[:N] (default: cuda if available)."),
        n_resamples: int = typer.Option(C.n_resamples, help="Bootstrap resamples for CIs."),
        confidence: float = typer.Option(C.confidence, help="CI level."),
        test: str = typer.Option(C.test, help="Paired test: wilcoxon | ttest."),
        stats_seed: int = typer.Option(C.stats_seed, help="Bootstrap seed."),
        resume: bool = typer.Option(C.resume, help="Skip models already done in --out."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a finished run in --out."),
    ) -> None:
        """Gradient norm per span: ||d L_S / d theta||, L_S = mean NLL over the span's tokens.

        Per example, for cot, code and the whole response; global and per parameter group
        (embed, layer.<i>, head, other). Writes gradnorm.parquet and summary_gradnorm.parquet.

        Example: diag gradnorm --model runs/follow --model runs/precede --data triples.jsonl
        --out runs/gradnorm --max-examples 50
        """
        cfg = C(**{k: v for k, v in locals().items() if k in C.__dataclass_fields__})
        invoke("diagnostics.gradnorm:main", cfg)
