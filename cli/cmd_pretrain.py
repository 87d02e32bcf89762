"""`diag pretrain`: train the embedded default base model (tokenizer + small LM) from scratch."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Pretrain a BPE tokenizer and a small Llama (--arch: gpt2, qwen2, gpt_neox) on the
stdlib's Python source.

Example: diag pretrain --preset tiny --out /tmp/base

The default demo's base (README, Results): pretrained on the toy world's other task
families, its tokenizer also learning the SFT data's words —
diag pretrain --preset toy --text runs/toy-base/triples.jsonl --no-stdlib \
    --tokenizer-text runs/toy/triples.jsonl --vocab-size 2048 --steps 1000 \
    --out runs/base-toy
"""


def register(app: typer.Typer) -> None:
    from training.pretrain import PretrainConfig

    command_from_config(
        app,
        "pretrain",
        PretrainConfig,
        "training.pretrain:main",
        doc=DOC,
    )
