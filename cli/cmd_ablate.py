"""`diag ablate`: retrain on AST-ablated training data with the same budget; curves vs unablated."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    from diagnostics.ablate import AblateConfig as C
    from diagnostics.transforms import describe

    @app.command("ablate")
    def ablate(
        run: str = typer.Option(..., help="The unablated diag train run folder."),
        out: str = typer.Option(..., help="Run folder to write."),
        variants: str = typer.Option(C.variants, help=f"Comma-separated transforms. {describe()}."),
        data: str = typer.Option(None, help="The run's training data, if it moved."),
        max_steps: int = typer.Option(
            None, help="Smaller budget than the run's (then 'none' is retrained at it too)."
        ),
        save_steps: int = typer.Option(None, help="Checkpoint interval at that budget."),
        transform_seed: int = typer.Option(C.transform_seed, help="Seed of random transforms."),
        verify: bool = typer.Option(
            C.verify, help="Sandbox each solution's tests before/after a transform."
        ),
        dry_run: bool = typer.Option(C.dry_run, help="Show before/after diffs; train nothing."),
        n_show: int = typer.Option(C.n_show, help="--dry-run: examples shown per variant."),
        bench: str = typer.Option(
            None, help="Benchmark for every checkpoint (default: jsonl:<the run's data>)."
        ),
        bench_file: str = typer.Option(None, help="The benchmark's data file (see diag eval)."),
        split: str = typer.Option(C.split, help="Benchmark split (triples benchmarks)."),
        max_tasks: int = typer.Option(None, help="Evaluate only the first N tasks."),
        n_samples: int = typer.Option(C.n_samples, help="Samples per task."),
        temperature: float = typer.Option(C.temperature, help="0 = greedy."),
        max_new_tokens: int = typer.Option(C.max_new_tokens, help="Generated tokens per sample."),
        eval_batch_size: int = typer.Option(C.eval_batch_size, help="Generation rows per batch."),
        eval_seed: int = typer.Option(C.eval_seed, help="Sampling and bootstrap seed of eval."),
        timeout: float = typer.Option(C.timeout_s, help="Sandbox seconds per program."),
        workers: int = typer.Option(None, help="Parallel sandbox processes (default: CPUs)."),
        dtype: str = typer.Option(C.dtype, help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16."),
        device: str = typer.Option(None, help="cpu | cuda[:N] (default: cuda if available)."),
        n_boot: int = typer.Option(C.n_boot, help="Eval bootstrap resamples (curve CIs)."),
        n_resamples: int = typer.Option(C.n_resamples, help="Summary bootstrap resamples."),
        confidence: float = typer.Option(C.confidence, help="CI level."),
        test: str = typer.Option(C.test, help="Paired test: wilcoxon | ttest."),
        resume: bool = typer.Option(C.resume, help="Continue (skip finished variants)."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a run in --out."),
    ) -> None:
        """Ablate the training data (AST transforms), retrain each variant with the unablated
        run's own settings, evaluate every checkpoint, and write pass@1 curves
        (ablate_curves.parquet, variant 'none' = the unablated run).

        Example: diag ablate --run runs/precede --variants signature,comments --out runs/abl

        Example: diag ablate --run runs/precede --variants signature --out x --dry-run
        """
        values = dict(locals())
        values["timeout_s"] = values.pop("timeout")
        cfg = C(**{k: v for k, v in values.items() if k in C.__dataclass_fields__})
        invoke("diagnostics.ablate:main", cfg)
