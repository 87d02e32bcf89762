"""`diag eval`: generate with a model (or read samples), extract code, run the tests, pass@k.

Example: diag eval --model runs/precede --bench toy --out runs/eval-precede
"""

from __future__ import annotations

import typer

from cli.common import InputError, invoke


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(","))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise InputError(f"--k {text!r}: expected positive integers, e.g. 1,5,10")
    return ks


def register(app: typer.Typer) -> None:
    from evaluation.benchmarks import bench_help
    from evaluation.run import EvalConfig as C

    @app.command("eval")
    def eval_(
        out: str = typer.Option(..., help="Run folder to write."),
        bench: str = typer.Option(C.bench, help=bench_help() + "."),
        model: str = typer.Option(None, help="Model dir, training run dir, or checkpoint dir."),
        samples: str = typer.Option(
            None, help="Pre-generated samples jsonl (task_id + solution | completion)."
        ),
        bench_file: str = typer.Option(None, help="The benchmark's data file (see --bench)."),
        split: str = typer.Option(C.split, help="Triples benchmarks: train|val|test|ood|all."),
        format: str = typer.Option(
            None,
            "--format",
            help="Extraction: seed|wo|follow|precede (default: the run's training format), "
            "raw (samples, the default there).",
        ),
        all_checkpoints: bool = typer.Option(
            C.all_checkpoints, help="Evaluate every checkpoint of the run in --model (resumable)."
        ),
        n_samples: int = typer.Option(C.n_samples, help="Samples per task (>1 needs sampling)."),
        temperature: float = typer.Option(C.temperature, help="0 = greedy; > 0 samples."),
        top_p: float = typer.Option(C.top_p, help="Nucleus sampling mass (when sampling)."),
        max_new_tokens: int = typer.Option(C.max_new_tokens, help="Generated tokens per sample."),
        batch_size: int = typer.Option(C.batch_size, help="Generation rows per batch."),
        seed: int = typer.Option(C.seed, help="Sampling and bootstrap seed."),
        k: str = typer.Option(",".join(map(str, C.ks)), help="pass@k for these k (k <= n)."),
        toy_seed: int = typer.Option(C.toy_seed, help="toy without --bench-file: world seed."),
        toy_n: int = typer.Option(C.toy_n, help="toy without --bench-file: tasks to generate."),
        max_tasks: int = typer.Option(None, help="Evaluate only the first N tasks."),
        timeout: float = typer.Option(C.timeout_s, help="Sandbox seconds per program."),
        workers: int = typer.Option(None, help="Parallel sandbox processes (default: CPUs)."),
        dtype: str = typer.Option(C.dtype, help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16."),
        device: str = typer.Option(None, help="cpu | cuda | cuda:N (default: cuda if present)."),
        label: str = typer.Option(None, help="Model label in the tables."),
        allow_missing: bool = typer.Option(
            C.allow_missing, help="--samples: evaluate only the tasks that have samples."
        ),
        n_boot: int = typer.Option(C.n_boot, help="Bootstrap resamples for the CIs."),
        resume: bool = typer.Option(C.resume, help="Continue a finished run in --out."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a run in --out."),
        progress: bool = typer.Option(C.progress, help="Show progress bars."),
    ) -> None:
        """Evaluate a model (or pre-generated samples) on a benchmark: pass@k with CIs.

        Example: diag eval --model runs/precede --bench toy --out runs/eval-precede

        Example: diag eval --model runs/follow --all-checkpoints --bench jsonl:runs/toy/triples.jsonl
        --split test --out runs/eval-follow-curve

        Example: diag eval --samples samples.jsonl --bench humaneval --out runs/he
        """
        cfg = C(
            out=out,
            bench=bench,
            model=model,
            samples=samples,
            bench_file=bench_file,
            split=split,
            format=format,
            all_checkpoints=all_checkpoints,
            n_samples=n_samples,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            ks=_ks(k),
            toy_seed=toy_seed,
            toy_n=toy_n,
            max_tasks=max_tasks,
            timeout_s=timeout,
            workers=workers,
            dtype=dtype,
            device=device,
            label=label,
            allow_missing=allow_missing,
            n_boot=n_boot,
            overwrite=overwrite,
            resume=resume,
            progress=progress,
        )
        summary = invoke("evaluation.run:main", cfg)
        for m in summary["models"]:
            p1 = m["pass_at_k"].get("pass@1", {}).get("value")
            typer.echo(
                f"{m['label']} step {m['step']}: pass@1 {p1} on {m['n_tasks']} tasks "
                f"({bench}, {summary['split']}) -> {out}"
            )
