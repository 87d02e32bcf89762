"""`--dry-run`: the memory a command needs, from the model configs alone (training/memory.py).

Parameter counts from the meta-device build are checked against the closed form of a Llama
(DeepSeek-Coder 6.7B's and 33B's published shapes: 6.74 B and 33.34 B), the parts of an
estimate against their formulas, and `diag kl --dry-run` through the command line on config-only folders
(no weights on disk at all): it prints the table, exits 0 and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbing import InputError
from training.memory import GIB, ModelShape, memory_need, model_shape

# (hidden, intermediate, layers, heads, kv heads, vocab): DeepSeek-Coder base models
SHAPES = {
    "6.7b": (4096, 11008, 32, 32, 32, 32256),
    "33b": (7168, 19200, 62, 56, 8, 32256),
}


def llama_params(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int) -> int:
    """A Llama's parameters, untied head: embeddings, per layer q/k/v/o + gate/up/down + two
    norms, the final norm."""
    head_dim = hidden // heads
    attn = 2 * hidden * hidden + 2 * hidden * kv * head_dim
    return 2 * vocab * hidden + layers * (attn + 3 * hidden * inter + 2 * hidden) + hidden


def config_only(root: Path, name: str) -> Path:
    from transformers import LlamaConfig

    hidden, inter, layers, heads, kv, vocab = SHAPES[name]
    out = root / name
    LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=16384,
        tie_word_embeddings=False,
    ).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("configs")
    return {name: config_only(root, name) for name in SHAPES}


@pytest.fixture(scope="module")
def shapes(configs) -> dict[str, ModelShape]:
    return {name: model_shape(path) for name, path in configs.items()}  # ~3 s each (meta build)


def test_parameters_are_counted_exactly_without_weights(shapes) -> None:
    for name, shape in shapes.items():
        assert shape.n_params == llama_params(*SHAPES[name]), name
    assert shapes["6.7b"].n_params == 6_740_512_768
    assert shapes["33b"].n_params == 33_342_991_360
    big = shapes["33b"]
    assert (big.kv_heads, big.head_dim, big.max_positions) == (8, 128, 16384)


def test_estimate_parts_follow_their_formulas(shapes) -> None:
    small, big = shapes["6.7b"], shapes["33b"]
    kl = memory_need("kl", small, dtype="bf16", batch=8, seq=2048, base=small)
    assert kl.parts["weights"] == 2 * small.n_params * 2
    assert kl.parts["forward"] == 8 * 2048 * (4 * 4096 + 3 * 11008 + 4096) * 2
    assert kl.parts["head chunks"] == 2 * 3 * 256 * 2**20
    assert kl.total == sum(kl.parts.values())
    ppl = memory_need("ppl", small, dtype="fp32", batch=8, seq=2048)
    assert ppl.parts["weights"] == small.n_params * 4 and "base" not in ppl.parts
    gen = memory_need("eval", big, dtype="bf16", batch=32, seq=1024, rows=32, new_tokens=512)
    assert gen.parts["kv cache"] == 2 * 62 * 8 * 128 * 32 * (1024 + 512) * 2
    assert round(gen.total / GIB, 2) == 73.74
    attn = memory_need("attn", small, dtype="bf16", batch=8, seq=2048)
    assert attn.parts["attention pattern"] == 2 * 8 * 32 * 2048 * 2048 * 4
    with pytest.raises(ValueError, match="no memory estimate"):
        memory_need("synth", small, dtype="bf16", batch=1, seq=1)


def test_kl_dry_run_prints_the_estimate_and_writes_nothing(configs, tmp_path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    out = tmp_path / "kl"
    result = CliRunner().invoke(
        app,
        ["kl", "--dry-run", "--model", str(configs["6.7b"]), "--base", str(configs["6.7b"]),
         "--format", "follow", "--data", str(tmp_path / "never-read.jsonl"), "--max-len", "2048",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output[-2000:]
    assert "6.741 B parameters, bf16, batch 8 x seq 2048" in result.output
    assert "weights                    25.11 GiB" in result.output
    assert "total                      28.24 GiB" in result.output
    assert not out.exists()


def test_eval_dry_run_estimates_generation_and_needs_a_model(configs, tmp_path, capsys) -> None:
    from evaluation.run import EvalConfig
    from evaluation.run import main as eval_main

    out = tmp_path / "eval"
    cfg = EvalConfig(
        model=str(configs["33b"]), batch_size=32, max_new_tokens=512, dry_run=True, out=str(out)
    )
    result = eval_main(cfg)
    printed = capsys.readouterr().out
    assert "33.343 B parameters, bf16, batch 32 x seq 1024" in printed
    assert "kv cache                   11.62 GiB" in printed
    assert result["dry_run"][0]["n_params"] == 33_342_991_360
    assert not out.exists()
    with pytest.raises(InputError, match="--dry-run: needs --model"):
        eval_main(EvalConfig(samples=str(tmp_path / "s.jsonl"), dry_run=True, out=str(out)))
