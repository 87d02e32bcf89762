"""The embedded default base: loadable HF dir, chat template, held-out loss, determinism."""

from __future__ import annotations

import json
import math

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
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_text()
    assert is_finished_base(tmp_path / "a", PretrainConfig(out="", **cfg))
    assert not is_finished_base(tmp_path / "a", PretrainConfig(out="", preset="tiny", steps=7))
