"""Shared fixtures: a tiny base model pretrained here (once per session) and small triples."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Never reach a hub; keep library caches out of $HOME.
ROOT = Path(__file__).resolve().parent.parent
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "TORCH_EXTENSIONS_DIR": str(ROOT / ".cache" / "torch_ext"),
    "MPLCONFIGDIR": str(ROOT / ".cache" / "mpl"),
}.items():
    os.environ.setdefault(key, value)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import write_test_triples  # noqa: E402

DIAG = str(Path(sys.executable).with_name("diag"))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` preset base model (tokenizer with a chat template), built once per session."""
    from training.pretrain import PretrainConfig, main

    out = tmp_path_factory.mktemp("base") / "tiny"
    main(PretrainConfig(out=str(out), preset="tiny", seed=0))
    return out


@pytest.fixture(scope="session")
def triples_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_triples(tmp_path_factory.mktemp("data") / "triples.jsonl", n=40)


@pytest.fixture(scope="session")
def tiny_runs(tiny_base: Path, triples_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """Short SFT runs of the tiny base in `follow` and `precede` (checkpoints at 4 and 8)."""
    from training.sft import TrainConfig, main

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for fmt in ("follow", "precede"):
        out = root / fmt
        main(
            TrainConfig(
                data=str(triples_file),
                format=fmt,
                base=str(tiny_base),
                out=str(out),
                max_steps=8,
                save_steps=4,
                batch_size=8,
                lr=3e-3,
                logging_steps=2,
            )
        )
        runs[fmt] = out
    return runs
