"""`diag pretrain`: train the embedded default base model (tokenizer + tiny Llama) from scratch."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        out: str = typer.Option(..., "--out", help="Model directory to write."),
        preset: str = typer.Option("small", help="tiny (tests, seconds) | small (demo base)."),
        steps: int = typer.Option(
            None, help="Override the preset's number of steps (0: save the random init)."
        ),
        seed: int = typer.Option(0, help="Seed for tokenizer data order and weights."),
        site_packages: bool = typer.Option(False, help="Also learn from site-packages."),
        text: list[str] = typer.Option(
            [], "--text", help="Triples file: its train split joins the corpus (repeatable)."
        ),
        stdlib: bool = typer.Option(True, help="Learn from the stdlib (--no-stdlib: --text only)."),
        vocab_size: int = typer.Option(None, help="Override the preset's vocabulary size."),
        overwrite: bool = typer.Option(False, help="Replace a finished model in --out."),
    ) -> None:
        """Pretrain a BPE tokenizer and a small Llama on the stdlib's Python source.

        Example: diag pretrain --preset tiny --out /tmp/base

        The toy recipe that passes the pass@1 transition (README): a tokenizer from the task
        text alone and no pretraining —
        diag pretrain --text runs/toy/triples.jsonl --no-stdlib --vocab-size 1024 --steps 0 \
            --out runs/base-toytok
        """
        from training.pretrain import PretrainConfig

        cfg = PretrainConfig(
            out=out,
            preset=preset,
            steps=steps,
            seed=seed,
            site_packages=site_packages,
            text=list(text),
            stdlib=stdlib,
            vocab_size=vocab_size,
            overwrite=overwrite,
        )
        invoke("training.pretrain:main", cfg)
