"""The embedded default base: loadable HF dir, chat template, held-out loss, determinism."""

from __future__ import annotations

import json
import math

import pytest

from plumbing import InputError
from training.pretrain import (
    PRESETS,
    PretrainConfig,
    is_finished_base,
    is_heldout,
    main,
    source_files,
)


def test_tiny_base_is_a_normal_hf_model_dir(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    assert tok.is_fast and tok.chat_template and tok.eos_token == "<|endoftext|>"
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok) == PRESETS["tiny"].vocab_size
    text = "def add(a, b):\n    return a + b\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level round trip
    with torch.no_grad():
        out = model(torch.tensor([ids]), labels=torch.tensor([ids]))
    assert math.isfinite(float(out.loss))
    report = json.loads((tiny_base / "pretrain.json").read_text())
    # it learned something: held-out loss well below a uniform guess over the vocabulary
    assert report["heldout_loss"] < math.log(len(tok)) - 0.5
    assert report["corpus"]["heldout_files"] > 0 and report["corpus"]["train_files"] > 0
    manifest = json.loads((tiny_base / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["result"]["n_params"] > 0


def test_heldout_files_are_never_trained_on():
    files = source_files(PretrainConfig(out="x"))
    names = [name for name, _ in files]
    held = [n for n in names if is_heldout(n, 3)]
    assert 0 < len(held) < len(names) * 0.1
    assert not any(n.startswith("stdlib/test/") for n in names)


def test_pretraining_is_deterministic_given_seed(tmp_path):
    from safetensors.torch import load_file

    cfg = dict(preset="tiny", steps=6, seed=3)
    a = main(PretrainConfig(out=str(tmp_path / "a"), **cfg))
    b = main(PretrainConfig(out=str(tmp_path / "b"), **cfg))
    assert a["heldout_loss"] == b["heldout_loss"]
    # tokens trained on count real tokens only: padding of blocks ended early is not one
    full = 6 * PRESETS["tiny"].batch_size * PRESETS["tiny"].seq_len
    assert 0.5 <= a["block_fill"] <= 1 and a["train_tokens"] == round(full * a["block_fill"])
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_text()
    assert is_finished_base(tmp_path / "a", PretrainConfig(out="", **cfg))
    assert not is_finished_base(tmp_path / "a", PretrainConfig(out="", preset="tiny", steps=7))


def test_a_base_from_task_text_alone_without_pretraining(tmp_path):
    """--text --no-stdlib --vocab-size --steps 0: the toy recipe's base (README, Results)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from tests.helpers import write_test_triples
    from training.pretrain import build_model, config_key, effective_preset

    data = write_test_triples(tmp_path / "triples.jsonl", n=60)
    cfg = PretrainConfig(
        out=str(tmp_path / "base"),
        preset="tiny",
        text=[str(data)],
        stdlib=False,
        vocab_size=512,
        steps=0,
        seed=1,
    )
    report = main(cfg)
    tok = AutoTokenizer.from_pretrained(tmp_path / "base")
    # 512 at most: a corpus this small runs out of pairs seen twice before the budget
    assert 300 < len(tok) <= 512 and tok.chat_template
    # the merges come from the task text: its stock phrases are single tokens
    assert len(tok(" values", add_special_tokens=False)["input_ids"]) == 1
    assert report["steps"] == 0 and report["corpus"]["train_files"] == 0
    # 36 train triples x 2 renders in, 12 val triples x 2 held out
    assert (report["corpus"]["train_texts"], report["corpus"]["heldout_texts"]) == (72, 24)
    # steps 0: exactly the seeded random init, so held-out loss is near a uniform guess
    fresh = build_model(effective_preset(cfg), tok, 1).state_dict()
    saved = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert all(torch.equal(saved[k], fresh[k]) for k in saved)
    assert abs(report["heldout_loss"] - math.log(len(tok))) < 1.0
    # the cache key covers the text's content
    assert is_finished_base(tmp_path / "base", cfg)
    write_test_triples(data, n=60, seed=5)
    assert not is_finished_base(tmp_path / "base", cfg)
    assert config_key(cfg)["text"] and config_key(PretrainConfig(out="x")).get("text") is None


def test_tokenizer_text_reaches_the_tokenizer_but_not_the_corpus(tmp_path):
    """--tokenizer-text: the default demo's base learns the SFT data's words as tokens while
    pretraining only on another corpus."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    from synthesis.schema import write_triples
    from tests.helpers import make_triples, write_test_triples
    from training.pretrain import config_key

    corpus = write_test_triples(tmp_path / "corpus.jsonl", n=60)
    sft = [
        replace(t, problem=t.problem.replace("values", "quokkas"), cot=t.cot + " quokkas")
        for t in make_triples(60, seed=3)
    ]
    sft_file = write_triples(tmp_path / "sft.jsonl", sft)
    common = dict(preset="tiny", text=[str(corpus)], stdlib=False, vocab_size=512, steps=0)
    with_sft = PretrainConfig(out=str(tmp_path / "a"), tokenizer_text=[str(sft_file)], **common)
    report = main(with_sft)
    main(PretrainConfig(out=str(tmp_path / "b"), **common))
    pieces = {
        d: len(AutoTokenizer.from_pretrained(tmp_path / d)(" quokkas")["input_ids"]) for d in "ab"
    }
    assert pieces["a"] == 1 and pieces["b"] > 2  # a word only the SFT data has
    # the model's corpus is the --text file alone: 36 train x 2 renders, 12 val x 2
    assert (report["corpus"]["train_texts"], report["corpus"]["heldout_texts"]) == (72, 24)
    assert report["corpus"]["tokenizer_text_files"] == [str(sft_file)]
    assert config_key(with_sft)["tokenizer_text"] and "tokenizer_text" not in config_key(
        PretrainConfig(out="b", **common)
    )
    assert is_finished_base(tmp_path / "a", with_sft)
    write_triples(sft_file, sft[:50])
    assert not is_finished_base(tmp_path / "a", with_sft)  # the key covers its content
    with pytest.raises(InputError, match="nothing.jsonl"):
        main(replace(with_sft, out=str(tmp_path / "c"), tokenizer_text=["nothing.jsonl"]))
    assert not (tmp_path / "c").exists()


def test_pretrain_text_options_fail_clearly(tmp_path):
    import pytest

    from plumbing import InputError

    with pytest.raises(InputError, match="--no-stdlib needs --text"):
        main(PretrainConfig(out=str(tmp_path / "a"), preset="tiny", stdlib=False))
    with pytest.raises(InputError, match="missing.jsonl"):
        main(PretrainConfig(out=str(tmp_path / "b"), preset="tiny", text=["missing.jsonl"]))
    with pytest.raises(InputError, match="--steps -1"):
        main(PretrainConfig(out=str(tmp_path / "c"), preset="tiny", steps=-1))
    assert not any((tmp_path / d).exists() for d in "abc")


def test_pack_corpus_never_cuts_a_text_that_fits_in_a_block(tiny_base):
    from transformers import AutoTokenizer

    from training.pretrain import _Blocks, pack_corpus

    tok = AutoTokenizer.from_pretrained(tiny_base)
    eos = tok.eos_token_id
    short = [f"def f{i}(x):\n    return x + {i}\n" * (1 + i % 3) for i in range(40)]
    long_text = "import os\n" * 200  # longer than a block: flows across blocks
    texts = short[:20] + [long_text] + short[20:]
    seq_len = 64
    blocks = pack_corpus(texts, tok, seq_len)
    assert all(0 < len(b) <= seq_len for b in blocks)
    # Every short text's tokens (+ EOS) sit whole inside one block, in order.
    encoded = [[*tok(t, add_special_tokens=False).input_ids, eos] for t in texts]
    assert all(len(ids) <= seq_len for i, ids in enumerate(encoded) if i != 20)
    flat = [t for b in blocks for t in b]
    stream = [t for ids in encoded for t in ids]
    # nothing is lost but a short tail, nothing reordered
    assert flat == stream[: len(flat)] and len(stream) - len(flat) < seq_len // 2
    starts = []  # (block, offset) where each text starts
    pos = 0
    where = [(k, j) for k, b in enumerate(blocks) for j in range(len(b))]
    for ids in encoded:
        if pos + len(ids) > len(where):
            break
        starts.append((where[pos], where[pos + len(ids) - 1]))
        pos += len(ids)
    for i, ((b0, _), (b1, _)) in enumerate(starts):
        if i != 20:
            assert b0 == b1, f"text {i} cut across blocks {b0} and {b1}"
    assert starts[20][1][0] - starts[20][0][0] >= 2  # the long text spans blocks
    # Padding (blocks ended early) is masked and never a label.
    padded = [k for k, b in enumerate(blocks) if len(b) < seq_len]
    assert padded
    item = _Blocks(blocks, seq_len, tok.pad_token_id)[padded[0]]
    n = len(blocks[padded[0]])
    assert item["input_ids"].shape == (seq_len,)
    assert (item["labels"][n:] == -100).all() and (item["attention_mask"][n:] == 0).all()
    assert item["labels"][:n].tolist() == blocks[padded[0]]
