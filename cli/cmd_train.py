"""`diag train`: SFT a base model on triples in one of the four formats."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    from training.sft import TrainConfig as C

    @app.command("train")
    def train(
        data: str = typer.Option(..., help="triples.jsonl (diag synth output or your own)."),
        format: str = typer.Option(..., "--format", help="seed | wo | follow | precede."),
        base: str = typer.Option(..., help="Base model: a local HF dir (or a run dir)."),
        out: str = typer.Option(..., help="Run folder to write."),
        split: str = typer.Option(C.split, help="Split to train on (all = every triple)."),
        max_examples: int = typer.Option(None, help="Use at most this many triples."),
        skip_bad: bool = typer.Option(C.skip_bad, help="Skip (and count) invalid lines."),
        max_len: int = typer.Option(C.max_len, help="Skip (and count) longer examples."),
        lr: float = typer.Option(C.lr, help="Peak learning rate."),
        epochs: float = typer.Option(C.epochs, help="Epochs (ignored when --max-steps > 0)."),
        max_steps: int = typer.Option(C.max_steps, help="Optimizer steps (overrides epochs)."),
        batch_size: int = typer.Option(C.batch_size, help="Examples (rows) per device step."),
        grad_accum: int = typer.Option(C.grad_accum, help="Gradient accumulation steps."),
        warmup_ratio: float = typer.Option(C.warmup_ratio, help="Warmup fraction."),
        weight_decay: float = typer.Option(C.weight_decay, help="AdamW weight decay."),
        scheduler: str = typer.Option(C.scheduler, help="LR schedule (transformers name)."),
        group_by_length: bool = typer.Option(C.group_by_length, help="Length-grouped batches."),
        packing: bool = typer.Option(C.packing, help="Pack examples into rows (no cross-attn)."),
        save_steps: int = typer.Option(C.save_steps, help="Checkpoint every N steps (all kept)."),
        save_only_model: bool = typer.Option(C.save_only_model, help="No optimizer state."),
        deepspeed: str = typer.Option(None, help="DeepSpeed config path, or zero3 / zero2."),
        bf16: bool = typer.Option(C.bf16, help="bf16 mixed precision (GPU)."),
        seed: int = typer.Option(C.seed, help="Seed (data order, init of new params)."),
        logging_steps: int = typer.Option(C.logging_steps, help="Log every N steps."),
        resume: bool = typer.Option(C.resume, help="Continue an interrupted run in --out."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a run in --out."),
    ) -> None:
        """Fine-tune on triples rendered as seed | wo | follow | precede (loss on the response).

        Example: diag train --data triples.jsonl --format precede --base /tmp/base
        --out /tmp/run --max-steps 20 --save-steps 10
        """
        cfg = C(**{k: v for k, v in locals().items() if k in C.__dataclass_fields__})
        invoke("training.sft:main", cfg)
