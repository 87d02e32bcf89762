"""`diag pretrain`: train the embedded default base model (tokenizer + tiny Llama) from scratch."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        out: str = typer.Option(..., "--out", help="Model directory to write."),
        preset: str = typer.Option(
            "small", help="tiny (tests, seconds) | toy (the default demo's model) | small."
        ),
        steps: int = typer.Option(
            None, help="Override the preset's number of steps (0: save the random init)."
        ),
        seed: int = typer.Option(0, help="Seed for tokenizer data order and weights."),
        site_packages: bool = typer.Option(False, help="Also learn from site-packages."),
        text: list[str] = typer.Option(
            [], "--text", help="Triples file: its train split joins the corpus (repeatable)."
        ),
        stdlib: bool = typer.Option(True, help="Learn from the stdlib (--no-stdlib: --text only)."),
        tokenizer_text: list[str] = typer.Option(
            [],
            "--tokenizer-text",
            help="Triples file whose train split only the tokenizer learns from (repeatable).",
        ),
        vocab_size: int = typer.Option(None, help="Override the preset's vocabulary size."),
        overwrite: bool = typer.Option(False, help="Replace a finished model in --out."),
    ) -> None:
        """Pretrain a BPE tokenizer and a small Llama on the stdlib's Python source.

        Example: diag pretrain --preset tiny --out /tmp/base

        The default demo's base (README, Results): pretrained on the toy world's other task
        families, its tokenizer also learning the SFT data's words —
        diag pretrain --preset toy --text runs/toy-base/triples.jsonl --no-stdlib \
            --tokenizer-text runs/toy/triples.jsonl --vocab-size 2048 --steps 1000 \
            --out runs/base-toy
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
            tokenizer_text=list(tokenizer_text),
            vocab_size=vocab_size,
            overwrite=overwrite,
        )
        invoke("training.pretrain:main", cfg)
