"""`diag pretrain`: train the embedded default base model (tokenizer + tiny Llama) from scratch."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        out: str = typer.Option(..., "--out", help="Model directory to write."),
        preset: str = typer.Option("small", help="tiny (tests, seconds) | small (demo base)."),
        steps: int = typer.Option(None, help="Override the preset's number of steps."),
        seed: int = typer.Option(0, help="Seed for tokenizer data order and weights."),
        site_packages: bool = typer.Option(False, help="Also learn from site-packages."),
        overwrite: bool = typer.Option(False, help="Replace a finished model in --out."),
    ) -> None:
        """Pretrain a BPE tokenizer and a small Llama on the stdlib's Python source.

        Example: diag pretrain --preset tiny --out /tmp/base
        """
        from training.pretrain import PretrainConfig

        cfg = PretrainConfig(
            out=out,
            preset=preset,
            steps=steps,
            seed=seed,
            site_packages=site_packages,
            overwrite=overwrite,
        )
        invoke("training.pretrain:main", cfg)
