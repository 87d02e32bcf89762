"""`diag attn`: span x span attention mass per layer and head (+ captum span attribution)."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    from diagnostics.attn import BACKENDS
    from diagnostics.attn import AttnConfig as C

    backends = "; ".join(f"{k}: {v}" for k, v in BACKENDS.items())

    @app.command("attn")
    def attn(
        model: list[str] = typer.Option(
            ..., help="Repeatable: model dir, training run dir (its final/) or checkpoint dir."
        ),
        data: str = typer.Option(..., help="triples.jsonl."),
        out: str = typer.Option(..., help="Run folder to write."),
        split: str = typer.Option(C.split, help="Split to score (all = every triple)."),
        format: str = typer.Option(None, "--format", help="Default: each model's own format."),
        spans: str = typer.Option(
            None, help="Query spans, comma-separated (prompt,cot,code); default: those present."
        ),
        sink: bool = typer.Option(C.sink, help="First token as its own dst column 'sink'."),
        backend: str = typer.Option(C.backend, help=backends + "."),
        batch_size: int = typer.Option(C.batch_size, help="Examples per forward pass."),
        max_examples: int = typer.Option(None, help="Use at most this many triples."),
        max_len: int = typer.Option(None, help="Skip (and count) longer examples."),
        dtype: str = typer.Option(C.dtype, help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16."),
        device: str = typer.Option(None, help="cpu | cuda[:N] (default: cuda if available)."),
        save_patterns: int = typer.Option(
            C.save_patterns, help="Keep full patterns of the first N examples (npz, heatmaps)."
        ),
        attribution: bool = typer.Option(C.attribution, help="Add captum span attribution."),
        attribution_methods: str = typer.Option(
            C.attribution_methods,
            help="ablation (captum FeatureAblation, span groups), ig (LayerIntegratedGradients).",
        ),
        ig_steps: int = typer.Option(C.ig_steps, help="Integrated-gradients steps."),
        baseline_token: str = typer.Option(
            C.baseline_token, help="Attribution baseline: pad | unk | eos | bos | a token id."
        ),
        n_resamples: int = typer.Option(C.n_resamples, help="Bootstrap resamples for CIs."),
        confidence: float = typer.Option(C.confidence, help="CI level."),
        test: str = typer.Option(C.test, help="Paired test: wilcoxon | ttest."),
        stats_seed: int = typer.Option(C.stats_seed, help="Bootstrap seed."),
        resume: bool = typer.Option(C.resume, help="Skip models already done in --out."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a finished run in --out."),
    ) -> None:
        """Attention mass between spans: mass[l,h,P,Q] = mean_{i in P} sum_{j in Q} A[l,h,i,j].

        Queries: prompt, cot, code; keys: prompt, cot, code, other (glue+eos) [, sink]: the masses
        of a query span sum to 1. Summed inside a hook per layer (no full pattern is kept).
        Writes attn.parquet, attn_examples.parquet, summary_attn.parquet (+ attribution*).

        Example: diag attn --model runs/follow --model runs/precede --data triples.jsonl
        --out runs/attn --attribution --save-patterns 4
        """
        cfg = C(**{k: v for k, v in locals().items() if k in C.__dataclass_fields__})
        invoke("diagnostics.attn:main", cfg)
